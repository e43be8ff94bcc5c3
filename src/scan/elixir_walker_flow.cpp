// The value-flow bookkeeping of the Elixir walk (scan/elixir_walker.h).
//
// The file is judged as a whole (scan/value_flow.h): the walk notes the
// modules used as values, the modules computed at run time, the atoms
// naming functions and the calls on modules not known statically; finish()
// judges the calls. Every word either half needs is vocabulary of the
// prefilter (the module; the functions it can reach are marked bound), so
// a cut parse sees what the whole parse sees.

#include "scan/elixir_walker.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::scan::elixir {

// The place of m_path[i], and the tuple, list, map or argument list it is
// written in (through keyword pairs, => and |, and a default argument's \\).
ValueFlow::Place Walker::place_of(std::size_t i, const Resolved& value) const
{
  const Node& node = m_path[i];
  auto pos = node.start();
  ValueFlow::Place place{pos.line, pos.column, clip(node.text(), 80), value.hops, value.via, {0, 0}};
  for (std::size_t j = i; j-- > 0;) {
    auto type = m_path[j].type();
    if (type == "tuple" || type == "list" || type == "map" || type == "arguments") {
      place.group = {m_path[j].start_byte(), m_path[j].end_byte()};
      break;
    }
    if (type == "pair" || type == "keywords" || type == "map_content") continue;
    if (type == "binary_operator") {
      auto op = m_path[j].field("operator").text();
      if (op == "=>" || op == "|" || op == "\\\\") continue;
    }
    break;
  }
  return place;
}

// The argument of a call that is judged as a module: the first of apply
// and its kin, the M of a function that takes M, F, A (spawn/3,
// :timer.apply_after/4). Its index among the arguments written in the
// call, -1 for the value piped into it (`piped`), or nullopt.
std::optional<int> Walker::judged_argument(const Node& call, bool piped) const
{
  if (!call || call.type() != "call") return std::nullopt;
  auto target = call.field("target");
  if (!target) return std::nullopt;
  std::string module;
  std::string_view function;
  int first = piped ? -1 : 0;
  if (target.type() == "identifier") {
    function = target.text();
    auto imported = m_resolver.resolve_import(function);
    if (function == "apply") return imported ? std::nullopt : std::optional<int>(first);
    module = imported ? imported->name : "Kernel";
  } else if (target.type() == "dot") {
    auto resolved = m_resolver.resolve_expr(target.field("left"));
    if (resolved.kind != Kind::module) return std::nullopt;
    module = std::move(resolved.name);
    function = target.field("right").text();
    if ((function == "apply" && (module == "Kernel" || module == ":erlang")) ||
        (function == "capture" && module == "Function") || (function == "make_fun" && module == ":erlang")) {
      return first;
    }
  } else {
    return std::nullopt;
  }
  auto arity = static_cast<std::uint32_t>(call_arguments(call).size()) + (piped ? 1 : 0);
  const auto* row = find_mfa_call(module, function, arity);
  if (row == nullptr) return std::nullopt;
  return static_cast<int>(row->module_argument) + first;
}

// True when m_path[j] is a call the expression m_path[j - 1] is piped into.
bool Walker::piped_into(std::size_t j) const
{
  if (j == 0) return false;
  const Node& pipe = m_path[j - 1];
  return pipe.type() == "binary_operator" && pipe.field("operator").text() == "|>" &&
         pipe.field("right") == m_path[j];
}

// True when the expression m_path[i] is where a module is judged, not
// used as a value: the module of a call (System.cmd, String.to_atom(x).f),
// the module argument of apply and its kin and of a function that takes
// M, F, A (spawn/3, Task.start/3), the argument of a declaration
// (alias, require, import, defmodule, defdelegate, @behaviour, the module
// of use).
bool Walker::judged_position(std::size_t i) const
{
  if (i == 0) return false;
  const Node& node = m_path[i];
  const Node& parent = m_path[i - 1];
  auto parent_type = parent.type();
  if (parent_type == "dot" && parent.field("left") == node) return true;
  if (parent_type == "binary_operator" && parent.field("left") == node &&
      parent.field("operator").text() == "|>" && judged_argument(parent.field("right"), true) == -1) {
    return true;
  }
  if (parent_type == "arguments" && i >= 2) {
    auto judged = judged_argument(m_path[i - 2], piped_into(i - 2));
    if (judged && *judged >= 0 && parent.named_child(static_cast<std::uint32_t>(*judged)) == node) return true;
  }
  for (std::size_t j = i; j-- > 0;) {
    auto type = m_path[j].type();
    if (type == "arguments" || type == "list" || type == "keywords" || type == "pair" || type == "dot" ||
        type == "tuple") {
      continue;
    }
    if (type != "call") return false;
    for (std::string_view name : {"alias", "require", "import", "defmodule", "defdelegate", "behaviour"}) {
      if (type_is_call_named(m_path[j], name)) return true;
    }
    return type_is_call_named(m_path[j], "use") && j + 2 == i && m_path[j + 1].type() == "arguments" &&
           m_path[j + 1].named_child(0) == node;
  }
  return false;
}

// The expression m_path[i] evaluates to `value`: a checked module or a
// module computed at run time used as a value, unless it is judged where it is.
void Walker::note_value(std::size_t i, const Resolved& value)
{
  if (value.kind == Kind::module) {
    if (m_rules.value_flow_functions(value.name).empty() || judged_position(i)) return;
    if (m_flow.note_module(value.name, place_of(i, value))) {
      for (const auto& function : m_rules.value_flow_functions(value.name)) m_resolver.mark_bound(function);
    }
  } else if (value.kind == Kind::dynamic) {
    if (!judged_position(i)) m_flow.note_computed(place_of(i, value));
  }
}

void Walker::note_atom(const Node& node)
{
  note_value(m_path.size() - 1, m_resolver.resolve_expr(node));
  if (node.type() != "atom") return;
  if (auto atom = literal_atom(node); atom && m_rules.is_value_flow_function(*atom)) {
    m_flow.note_name(*atom, place_of(m_path.size() - 1, {}));
  }
}

// A call that builds a module name (String.to_atom, Module.concat, ...):
// a value, folded from constants or computed at run time.
void Walker::note_builder(const Node& call)
{
  std::size_t i = m_path.size() - 1;
  if (i >= 1 && m_path[i - 1].type() == "binary_operator" && m_path[i - 1].field("operator").text() == "|>" &&
      m_path[i - 1].field("right") == call) {
    --i; // "Elixir.System" |> String.to_atom(): the pipe is the expression
  }
  note_value(i, m_resolver.resolve_expr(m_path[i]));
}

// A call on a module the scan does not know (m.cmd(...), apply(m, f, a)):
// a value_flow finding if the file gives it a module to reach, else the
// low warning it had (if any). Its place in m_findings is kept, so
// findings stay in the order of the code.
void Walker::note_dynamic_call(const Node& node, std::optional<std::string> function, std::optional<std::uint32_t> arity,
                               std::string call, std::optional<std::string> warning)
{
  if (warning) {
    report_dynamic(node, Severity::low, std::move(*warning));
  } else {
    m_findings.push_back(make(node, "", "", Severity::low, "")); // a placeholder
  }
  m_dynamic_calls.emplace_back(m_findings.size() - 1, ValueFlow::Call{std::move(function), arity, std::move(call)});
}

void Walker::resolve_value_flow()
{
  if (m_dynamic_calls.empty()) return;
  for (const auto& [index, call] : m_dynamic_calls) {
    if (auto finding = m_flow.judge(call, m_findings[index], m_depth)) m_findings[index] = std::move(*finding);
  }
  std::erase_if(m_findings, [](const Finding& finding) { return finding.type.empty(); });
}

// A module computed at run time: high with a dangerous function name, medium
// when the function is computed too, low with any other literal name (real
// libraries build protocol and implementation modules this way).
Severity Walker::dynamic_severity(const std::optional<std::string>& function) const
{
  if (!function) return Severity::medium;
  return m_rules.is_dangerous_function_name(*function) ? Severity::high : Severity::low;
}

} // namespace sandbox::scan::elixir
