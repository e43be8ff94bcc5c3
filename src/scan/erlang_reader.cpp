// The reading of an Erlang token stream (scan/erlang_reader.h): forms and
// attributes, clauses and blocks, and the calls it meets (remote and local
// calls, funs, imports, apply and the functions that take a module, a
// function name and an argument list), judged against the rule table.

#include "scan/erlang_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::scan::erlang {

namespace {

// Attributes whose body is types, not code.
constexpr std::array kTypeAttributes = {"spec", "type", "opaque", "callback", "export", "export_type",
                                        "module", "behaviour", "behavior", "vsn", "author",
                                        "optional_callbacks", "nominal"};

constexpr std::array kBlockOpeners = {"case", "if", "receive", "begin", "try", "maybe"};

template <typename Array>
bool in(const Array& array, std::string_view value)
{
  return std::find(array.begin(), array.end(), value) != array.end();
}

} // namespace

Reader::Reader(std::string_view file, std::string_view source, std::vector<ErlangToken> tokens, Report& report)
    : m_file(file), m_source(source), m_tokens(std::move(tokens)), m_report(report), m_flow(report.rules())
{
}

void Reader::run()
{
  bool clause_start = true;
  int brackets = 0;
  int blocks = 0;
  for (std::size_t i = 0; i < m_tokens.size(); ++i) {
    const auto& t = m_tokens[i];
    if (t.kind == Kind::end_of_form) {
      clause_start = true;
      brackets = 0;
      blocks = 0;
      m_in_define = false;
      m_in_record = false;
      m_open.clear();
      continue;
    }
    bool at_clause_start = clause_start;
    clause_start = false;
    if (at_clause_start && is_punct(i, "-") && kind_at(i + 1) == Kind::atom) {
      i = attribute(i);
      clause_start = true; // the attribute ended its form
      continue;
    }
    if (t.kind == Kind::punct) {
      auto p = t.text;
      if (p == "(" || p == "[" || p == "{" || p == "<<") {
        ++brackets;
        m_open.push_back(i);
      }
      if (p == ")" || p == "]" || p == "}" || p == ">>") {
        brackets = std::max(0, brackets - 1);
        if (!m_open.empty()) m_open.pop_back();
      }
      if (p == ";" && brackets == 0 && blocks == 0) clause_start = true;
      continue;
    }
    if (t.kind == Kind::atom && t.text.front() != '\'') {
      if (in(kBlockOpeners, t.value)) {
        ++blocks;
        continue;
      }
      if (t.value == "fun") {
        if (is_punct(i + 1, "(") || (kind_at(i + 1) == Kind::var && is_punct(i + 2, "("))) {
          ++blocks;
        } else {
          fun_reference(i);
        }
        continue;
      }
      if (t.value == "end") {
        blocks = std::max(0, blocks - 1);
        continue;
      }
    }
    if (t.kind == Kind::atom && is_punct(i + 1, ":") && kind_at(i + 2) == Kind::atom) {
      remote_call(i);
      i += 2;
      continue;
    }
    if (t.kind == Kind::var && is_punct(i + 1, ":") && kind_at(i + 2) == Kind::atom &&
        is_punct(i + 3, "(")) {
      const auto& function = m_tokens[i + 2].value;
      bool warn = m_report.rules().is_dangerous_function_name(function);
      note_dynamic_call(i, function, static_cast<std::uint32_t>(arguments(i + 3).size()),
                        fmt::format("{}:{}", t.text, function),
                        warn ? std::optional<std::string>(
                                 fmt::format("{}:{}(...) on a module not known statically", t.text, function))
                             : std::nullopt);
      i += 2;
      continue;
    }
    if (t.kind == Kind::var && is_punct(i + 1, ":") && kind_at(i + 2) == Kind::var && is_punct(i + 3, "(")) {
      // Mod:Fun(...): module and function computed.
      note_dynamic_call(i, std::nullopt, static_cast<std::uint32_t>(arguments(i + 3).size()),
                        fmt::format("{}:{}", t.text, m_tokens[i + 2].text), std::nullopt);
      i += 2;
      continue;
    }
    if (t.kind == Kind::atom && is_punct(i + 1, ":") && kind_at(i + 2) == Kind::var && is_punct(i + 3, "(")) {
      // os:Fun(...): a computed function of a known module, as apply(os, Fun, Args).
      auto module = module_from_atom(t.value);
      if (m_report.rules().has_dangerous_functions(module)) {
        report(i, "dynamic_dispatch", "dynamic_dispatch", Severity::high,
               fmt::format("Call of a computed function of {} [HIGH RISK]", module), std::nullopt, std::nullopt,
               std::nullopt);
      }
      i += 2;
      continue;
    }
    if (t.kind == Kind::atom && is_punct(i + 1, "(") && !(at_clause_start && brackets == 0 && blocks == 0) &&
        !preceded_by_remote(i)) {
      local_call(i);
    } else if (t.kind == Kind::atom && !is_punct(i + 1, "(")) {
      note_atom(i);
    }
  }
  finish();
}

bool Reader::preceded_by_remote(std::size_t i) const
{
  return i > 0 && (is_punct(i - 1, ":") || is_punct(i - 1, "#") ||
                   (m_tokens[i - 1].kind == Kind::atom && m_tokens[i - 1].value == "fun"));
}

// Index of the token that closes the bracket opened at `open`.
std::size_t Reader::closing(std::size_t open) const
{
  int depth = 0;
  for (std::size_t j = open; j < m_tokens.size(); ++j) {
    if (m_tokens[j].kind == Kind::end_of_form) return j;
    if (m_tokens[j].kind != Kind::punct) continue;
    auto p = m_tokens[j].text;
    if (p == "(" || p == "[" || p == "{" || p == "<<") ++depth;
    if (p == ")" || p == "]" || p == "}" || p == ">>") {
      if (--depth == 0) return j;
    }
  }
  return m_tokens.size();
}

// The start index of each top-level argument of the call whose "(" is at `open`.
std::vector<std::size_t> Reader::arguments(std::size_t open) const
{
  std::vector<std::size_t> starts;
  auto close = closing(open);
  if (close <= open + 1) return starts;
  starts.push_back(open + 1);
  int depth = 0;
  for (std::size_t j = open + 1; j < close; ++j) {
    if (m_tokens[j].kind != Kind::punct) continue;
    auto p = m_tokens[j].text;
    if (p == "(" || p == "[" || p == "{" || p == "<<") ++depth;
    if (p == ")" || p == "]" || p == "}" || p == ">>") --depth;
    if (p == "," && depth == 0) starts.push_back(j + 1);
  }
  return starts;
}

std::size_t Reader::skip_form(std::size_t i) const
{
  while (i < m_tokens.size() && m_tokens[i].kind != Kind::end_of_form) ++i;
  return i;
}

std::size_t Reader::attribute(std::size_t dash)
{
  const auto& name = m_tokens[dash + 1].value;
  if (name == "module" && is_punct(dash + 2, "(") && kind_at(dash + 3) == Kind::atom) m_module = m_tokens[dash + 3].value;
  if (in(kTypeAttributes, name)) return skip_form(dash);
  if (name == "import" && is_punct(dash + 2, "(") && kind_at(dash + 3) == Kind::atom) {
    const auto& module = m_tokens[dash + 3].value;
    auto end = skip_form(dash);
    for (std::size_t j = dash + 4; j + 1 < end; ++j) {
      if (m_tokens[j].kind == Kind::atom && is_punct(j + 1, "/")) {
        m_imports.emplace_back(m_tokens[j].value, module);
      }
    }
    return end;
  }
  if (name == "on_load") {
    report(dash, "dangerous_operation", "nif_loading", Severity::medium,
           "-on_load hook: code runs when the module is loaded (how NIFs are loaded) [MEDIUM RISK]",
           std::nullopt, std::nullopt, std::nullopt);
    return skip_form(dash);
  }
  if (name == "define") m_in_define = true;
  if (name == "record") m_in_record = true; // field names are no values
  if (name == "record" || name == "define" || name == "compile" || name == "include" ||
      name == "include_lib" || name == "ifdef" || name == "ifndef" || name == "undef") {
    return dash + 1; // its body is read as code (defines and record defaults hold calls)
  }
  return dash + 1;
}

void Reader::fun_reference(std::size_t i)
{
  // fun M:F/N
  if (kind_at(i + 1) == Kind::atom && is_punct(i + 2, ":") && kind_at(i + 3) == Kind::atom &&
      is_punct(i + 4, "/")) {
    std::optional<std::uint32_t> arity;
    if (kind_at(i + 5) == Kind::number) arity = to_arity(m_tokens[i + 5].text);
    check_call(i, module_from_atom(m_tokens[i + 1].value), m_tokens[i + 3].value, arity, std::nullopt, "fun");
  } else if (kind_at(i + 1) == Kind::atom && is_punct(i + 2, "/")) {
    // fun cmd/1 after -import
    if (auto module = imported(m_tokens[i + 1].value)) {
      check_call(i, *module, m_tokens[i + 1].value, std::nullopt, std::nullopt, "fun");
    }
  }
}

std::optional<std::uint32_t> Reader::to_arity(std::string_view text)
{
  std::uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > 1000) return std::nullopt;
    value = value * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return value;
}

std::optional<std::string> Reader::imported(std::string_view name) const
{
  for (const auto& [function, module] : m_imports) {
    if (function == name) return module_from_atom(module);
  }
  return std::nullopt;
}

void Reader::remote_call(std::size_t i)
{
  auto module = module_from_atom(m_tokens[i].value);
  const auto& function = m_tokens[i + 2].value;
  bool call = is_punct(i + 3, "(");
  if (!call && !m_in_define) return; // a type such as file:filename() is inside -spec, skipped
  if (call && module == ":erlang" && function == "apply") return apply(i, i + 3, "erlang:apply");
  if (call && builds_module_name(module, function)) note_builder(i, closing(i + 3) + 1);
  std::optional<std::uint32_t> arity;
  std::optional<std::size_t> first_arg;
  if (call) {
    auto args = arguments(i + 3);
    arity = static_cast<std::uint32_t>(args.size());
    if (!args.empty()) first_arg = args[0];
  }
  check_call(i, module, function, arity, first_arg, "");
  if (call) {
    mfa_call(i, i + 3, module, function, fmt::format("{}:{}/{}", m_tokens[i].text, m_tokens[i + 2].text, *arity));
  }
}

void Reader::local_call(std::size_t i)
{
  const auto& name = m_tokens[i].value;
  if (name == "apply") return apply(i, i + 1, "apply");
  if (builds_module_name(":erlang", name)) note_builder(i, closing(i + 1) + 1);
  auto args = arguments(i + 1);
  std::optional<std::size_t> first_arg;
  if (!args.empty()) first_arg = args[0];
  auto arity = static_cast<std::uint32_t>(args.size());
  if (auto module = imported(name)) {
    check_call(i, *module, name, arity, first_arg, "import");
    return mfa_call(i, i + 1, *module, name, fmt::format("{}/{}", name, arity));
  }
  // Auto-imported BIFs: open_port(...), halt(), load_nif(...), spawn(...)
  check_call(i, ":erlang", name, arity, first_arg, "");
  mfa_call(i, i + 1, ":erlang", name, fmt::format("{}/{}", name, arity));
}

Reader::Module Reader::module_at(std::size_t i, std::size_t end) const
{
  if (kind_at(i) == Kind::atom && i + 1 == end) return {true, false, module_from_atom(m_tokens[i].value)};
  if (kind_at(i) == Kind::macro && m_tokens[i].value == "?MODULE" && i + 1 == end && !m_module.empty()) {
    return {true, false, module_from_atom(m_module)};
  }
  std::size_t j = i;
  if (kind_at(j) == Kind::atom && m_tokens[j].value == "erlang" && is_punct(j + 1, ":")) j += 2;
  if (kind_at(j) == Kind::atom) {
    const auto& f = m_tokens[j].value;
    if ((f == "list_to_atom" || f == "binary_to_atom" || f == "list_to_existing_atom" ||
         f == "binary_to_existing_atom") && is_punct(j + 1, "(")) {
      // a constant: list_to_atom("os") or binary_to_atom(<<"os">>)
      std::size_t k = j + 2;
      if (is_punct(k, "<<")) ++k;
      if (kind_at(k) == Kind::string) {
        return {true, false, module_from_atom(m_tokens[k].value)};
      }
      return {false, true, f};
    }
  }
  return {};
}

void Reader::apply(std::size_t at, std::size_t open, std::string_view how)
{
  auto args = arguments(open);
  if (args.size() < 3) return;
  judge_mfa(at, args, closing(open), 0, 0, how, "");
}

// A call of a function that takes M, F, A and calls them in another
// process, from a timer or on a node (rules.h, MfaCall), whose "(" is at
// `open`: the module and function it is given are judged as apply's are.
void Reader::mfa_call(std::size_t at, std::size_t open, const std::string& module, const std::string& function,
                      std::string how)
{
  auto args = arguments(open);
  const auto* row = find_mfa_call(module, function, static_cast<std::uint32_t>(args.size()));
  if (row == nullptr) return;
  judge_mfa(at, args, closing(open), row->module_argument, row->prepended, how, row->where);
}

// The module, function and argument list at args[k], args[k + 1] and
// args[k + 2] (the starts of the arguments of a call whose closing bracket
// is at `close`), given to apply or to a function that takes M, F, A.
void Reader::judge_mfa(std::size_t at, const std::vector<std::size_t>& args, std::size_t close, std::size_t k,
                       std::uint32_t prepended, std::string_view how, std::string_view where, int nested)
{
  auto end_of = [&](std::size_t n) { return n + 1 < args.size() ? args[n + 1] - 1 : close; };
  auto module = module_at(args[k], end_of(k));
  m_judged.insert(args[k]); // the module of this call, judged here
  std::optional<std::string> function;
  if (kind_at(args[k + 1]) == Kind::atom && args[k + 1] + 1 == end_of(k + 1)) function = m_tokens[args[k + 1]].value;
  // The argument list, when it is a list written out: [A1, A2].
  std::optional<std::vector<std::size_t>> elements;
  if (is_punct(args[k + 2], "[") && closing(args[k + 2]) + 1 == end_of(k + 2)) elements = arguments(args[k + 2]);
  std::optional<std::size_t> first_arg;
  if (elements && !elements->empty() && prepended == 0) first_arg = elements->front();
  if (module.known) {
    std::string via = where.empty() ? std::string(how) : fmt::format("{} {}", how, where);
    if (function && elements && nested < 4) {
      // What it is given may itself take M, F, A: spawn(erlang, apply, [os, cmd, Args]).
      auto arity = static_cast<std::uint32_t>(elements->size());
      const auto* row = find_mfa_call(module.name, *function, arity);
      if (row != nullptr || (arity == 3 && module.name == ":erlang" && *function == "apply")) {
        return judge_mfa(at, *elements, closing(args[k + 2]), row != nullptr ? row->module_argument : 0,
                         row != nullptr ? row->prepended : 0, fmt::format("{}:{}/{} of {}", m_tokens[args[k]].text,
                                                                          m_tokens[args[k + 1]].text, arity, via),
                         row != nullptr ? row->where : "", nested + 1);
      }
    }
    std::optional<std::uint32_t> arity;
    if (elements) arity = static_cast<std::uint32_t>(elements->size()) + prepended;
    if (function) return check_call(at, module.name, *function, arity, first_arg, via);
    if (m_report.rules().has_dangerous_functions(module.name)) {
      report(at, "dynamic_dispatch", "dynamic_dispatch", Severity::high,
             fmt::format("{} of a computed function of {} [HIGH RISK]", how, module.name), std::nullopt,
             std::nullopt, std::nullopt);
    }
    return;
  }
  bool dangerous = function && m_report.rules().is_dangerous_function_name(*function);
  if (module.dynamic) {
    report(at, "dynamic_dispatch", "dynamic_dispatch", dangerous ? Severity::high : Severity::medium,
           fmt::format("{} through a module computed at run time ({}) [{} RISK]", how, module.name,
                       dangerous ? "HIGH" : "MEDIUM"),
           std::nullopt, std::nullopt, std::nullopt);
  } else {
    note_dynamic_call(at, function, std::nullopt, std::string(how),
                      dangerous ? std::optional<std::string>(
                                    fmt::format("{} of {} on a module not known statically", how, *function))
                                : std::nullopt);
  }
}

void Reader::check_call(std::size_t at, const std::string& module, const std::string& function,
                        std::optional<std::uint32_t> arity, std::optional<std::size_t> first_arg, std::string_view how)
{
  auto rule = m_report.rules().lookup(module, function);
  if (!rule) return;
  std::string type = rule->operation == "restricted_module" ? "restricted_module" : "dangerous_operation";
  std::string operation(rule->operation);
  auto severity = rule->severity;
  std::string message(rule->message);
  if (rule->path_argument && first_arg && kind_at(*first_arg) == Kind::string) {
    const auto& path = m_tokens[*first_arg].value;
    if (path.starts_with('/') || path.starts_with('~')) {
      type = "host_path_access";
      operation = "host_path_access";
      severity = std::max(severity, Severity::high);
      message = "Absolute host path in a file operation";
    }
  }
  std::string upper(to_string(severity));
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  std::string shown = module.starts_with(':') ? module.substr(1) : "'Elixir." + module + "'";
  shown += ":" + function;
  if (arity) shown += fmt::format("/{}", *arity);
  report(at, type, operation, severity,
         fmt::format("{} detected: {}{} [{} RISK]", message, shown,
                     how.empty() ? "" : fmt::format(" (via {})", how), upper),
         module, function, arity);
}

} // namespace sandbox::scan::erlang
