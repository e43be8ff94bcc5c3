#include "scan/elixir_scanner.h"

#include "scan/elixir_prefilter.h"
#include "scan/elixir_resolver.h"
#include "scan/value_flow.h"
#include "syntax/elixir_lexer.h"
#include "syntax/elixir_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace sandbox::scan {

namespace {

using namespace elixir;

// The namespace of Mix tasks: `mix name` runs Mix.Tasks.Name.run/1.
constexpr std::string_view kMixTasks = "Mix.Tasks.";

class ElixirScanner {
public:
  ElixirScanner(std::string_view file, const syntax::Tree& tree, const Report& report)
      : m_file(file), m_tree(tree), m_rules(report.rules()), m_depth(report.scan_depth()),
        m_scope(report.scope()), m_file_runs_in(report.file_runs_in()), m_resolver(report.rules()),
        m_flow(report.rules())
  {
  }

  void run()
  {
    // A cursor walk: indexing children (ts_node_child) and asking for a
    // parent (ts_node_parent) are linear in tree-sitter, so a block of many
    // thousand expressions would make either quadratic. m_path holds the
    // named ancestors of the node being visited.
    TSTreeCursor cursor = ts_tree_cursor_new(m_tree.root().raw());
    struct CursorGuard {
      TSTreeCursor* cursor;
      ~CursorGuard() { ts_tree_cursor_delete(cursor); }
    } guard{&cursor};
    std::vector<bool> scoped;
    auto visit = [&]() {
      Node node = m_tree.root().same_tree(ts_tree_cursor_current_node(&cursor));
      m_path.push_back(node);
      scoped.push_back(enter(node));
    };
    auto leave = [&]() {
      if (scoped.back()) m_resolver.close_scope();
      scoped.pop_back();
      m_path.pop_back();
    };
    visit();
    while (true) {
      // Descend to the first named child, if any.
      bool descended = false;
      if (ts_tree_cursor_goto_first_child(&cursor)) {
        do {
          if (ts_node_is_named(ts_tree_cursor_current_node(&cursor))) {
            descended = true;
            break;
          }
        } while (ts_tree_cursor_goto_next_sibling(&cursor));
        if (!descended) ts_tree_cursor_goto_parent(&cursor);
      }
      if (descended) {
        visit();
        continue;
      }
      // Leave nodes until one has a next named sibling.
      bool moved = false;
      while (!moved) {
        leave();
        if (m_path.empty()) return finish();
        while (ts_tree_cursor_goto_next_sibling(&cursor)) {
          if (ts_node_is_named(ts_tree_cursor_current_node(&cursor))) {
            moved = true;
            break;
          }
        }
        if (!moved) ts_tree_cursor_goto_parent(&cursor);
      }
      visit();
    }
  }

  std::vector<Finding>& findings() { return m_findings; }
  // Names bound to a module that matters (aliases, variables, attributes,
  // __MODULE__) and functions an import of one makes callable bare: code
  // using them can be reported wherever it is.
  [[nodiscard]] const WordSet& bound_names() const { return m_resolver.bound_names(); }

private:
  void finish()
  {
    resolve_value_flow();
    if (m_first_error) {
      Finding finding;
      finding.type = "syntax_error";
      finding.severity = Severity::low;
      finding.operation = "parse";
      finding.message = "Syntax error: the file was scanned as far as it parses; the compiler will reject it";
      fill_position(finding, *m_first_error);
      m_findings.push_back(std::move(finding));
    }
  }

  // The named parent of the node being visited (the top of m_path).
  [[nodiscard]] Node parent_of(const Node& node) const
  {
    if (m_path.size() >= 2 && m_path.back() == node) return m_path[m_path.size() - 2];
    return node.parent();
  }

  // Returns true when the node opens a lexical scope.
  bool enter(const Node& node)
  {
    auto type = node.type();
    if (!m_first_error && node.is_error()) m_first_error = node;
    if (type == "call") {
      handle_call(node);
    } else if (type == "do_block" || type == "anonymous_function") {
      m_resolver.open_scope(parent_of(node));
      return true;
    } else if (type == "unary_operator") {
      handle_unary(node);
    } else if (type == "binary_operator") {
      if (node.field("operator").text() == "=") m_resolver.bind_variable(node);
    } else if (type == "alias") {
      note_value(m_path.size() - 1, m_resolver.resolve_alias(node.text()));
    } else if (type == "atom" || type == "quoted_atom") {
      note_atom(node);
    }
    return false;
  }

  // --- calls ------------------------------------------------------------

  void handle_unary(const Node& node)
  {
    auto op = node.field("operator").text();
    auto operand = node.field("operand");
    if (op == "@" && operand.type() == "call" && operand.field("target").type() == "identifier") {
      auto name = operand.field("target").text();
      auto args = call_arguments(operand);
      m_heads.insert({operand.start_byte(), operand.end_byte()});
      if (name == "on_load") {
        report(node, "dangerous_operation", "nif_loading", Severity::medium,
               "@on_load hook: code runs when the module is loaded (how NIFs are loaded) [MEDIUM RISK]",
               std::nullopt, std::nullopt, std::nullopt);
        // Even in a Mix task: loading the BEAM runs it, and a host loads every BEAM.
        m_findings.back().runs_in = RunsIn::host;
      }
      if (args.size() == 1) {
        auto value = m_resolver.resolve_expr(args[0]);
        if (value.kind != Kind::unknown) m_resolver.bind_attribute(std::string(name), value);
      }
    } else if (op == "&" && operand.type() == "binary_operator" &&
               operand.field("operator").text() == "/" && operand.field("left").type() == "identifier") {
      // &cmd/1 after an import
      auto name = operand.field("left").text();
      if (auto module = m_resolver.resolve_import(name)) {
        auto arity = parse_arity(operand.field("right"));
        check_call(node, *module, name, arity, {}, "capture");
      }
    }
  }

  static std::optional<std::uint32_t> parse_arity(const Node& node)
  {
    if (!node || node.type() != "integer") return std::nullopt;
    std::uint32_t value = 0;
    for (char c : node.text()) {
      if (c < '0' || c > '9' || value > 1000) return std::nullopt;
      value = value * 10 + static_cast<std::uint32_t>(c - '0');
    }
    return value;
  }

  // The arity of a call node: its arguments, one more when piped into, or
  // the N of &M.f/N.
  [[nodiscard]] std::optional<std::uint32_t> call_arity(const Node& call, std::size_t arg_count,
                                                      bool has_args) const
  {
    auto parent = parent_of(call);
    if (!has_args && parent && parent.type() == "binary_operator" &&
        parent.field("operator").text() == "/" && parent.field("left") == call) {
      auto grand = m_path.size() >= 3 && m_path.back() == call ? m_path[m_path.size() - 3] : parent.parent();
      if (grand && grand.type() == "unary_operator" && grand.field("operator").text() == "&") {
        return parse_arity(parent.field("right"));
      }
    }
    return static_cast<std::uint32_t>(arg_count);
  }

  void handle_call(const Node& node)
  {
    if (m_heads.contains({node.start_byte(), node.end_byte()})) return;
    auto target = node.field("target");
    if (!target) return;
    auto args = call_arguments(node);
    bool has_args = static_cast<bool>(node.first_child_of_type("arguments"));
    auto parent = parent_of(node);
    if (parent && parent.type() == "binary_operator" && parent.field("operator").text() == "|>" &&
        parent.field("right") == node) {
      args.insert(args.begin(), parent.field("left"));
      has_args = true;
    }
    auto arity = call_arity(node, args.size(), has_args);

    if (target.type() == "identifier") {
      auto name = target.text();
      if (name == "alias" || name == "require") return m_resolver.declare_alias(args);
      if (name == "import") return m_resolver.declare_import(args);
      if (name == "apply") return handle_apply(node, args, "apply");
      if (is_definition(name)) {
        mark_head(args);
        return;
      }
      if (name == "defdelegate") return handle_defdelegate(node, args);
      if (name == "defmodule" || name == "quote" || name == "unquote") return;
      auto module = m_resolver.resolve_import(name).value_or(Resolved{Kind::module, "Kernel", 0, ""});
      check_call(node, module, name, arity, args, "");
      return handle_mfa_call(node, module.name, name, arity, args);
    }
    if (target.type() != "dot") return;
    auto left = target.field("left");
    auto right = target.field("right");
    std::optional<std::string> function;
    if (right.type() == "identifier") {
      function = std::string(right.text());
    } else if (auto text = literal_string(right)) {
      function = *text;
    }
    auto module = m_resolver.resolve_expr(left);
    if (function && Resolver::is_builder(module, *function)) note_builder(node);
    if (module.kind == Kind::module) {
      if (function && *function == "apply" && (module.name == "Kernel" || module.name == ":erlang")) {
        return handle_apply(node, args, display_call(module.name, "apply"));
      }
      if (function && ((module.name == "Function" && *function == "capture") ||
                       (module.name == ":erlang" && *function == "make_fun"))) {
        return handle_apply(node, args, display_call(module.name, *function));
      }
      if (!function) {
        if (m_rules.has_dangerous_functions(module.name)) {
          report_dynamic(node, Severity::high,
                         fmt::format("Call of a function computed at compile time on {} [HIGH RISK]",
                                     module.name));
        }
        return;
      }
      check_call(node, module, *function, arity, args, "");
      return handle_mfa_call(node, module.name, *function, arity, args);
    }
    if (module.kind == Kind::dynamic) {
      auto severity = dynamic_severity(function);
      report_dynamic(node, severity,
                     fmt::format("Call through a module computed at run time ({}){} [{} RISK]",
                                 module.via, function ? "." + *function : ".<computed>",
                                 upper(severity)));
      return;
    }
    if (!function) return; // x."#{f}"(...): see docs/security.md, "What the scanner cannot see"
    bool warn = left.type() == "identifier" && has_args && m_rules.is_dangerous_function_name(*function);
    note_dynamic_call(node, function, arity, fmt::format("{}.{}", clip(left.text(), 60), *function),
                      warn ? std::optional<std::string>(
                               fmt::format("{}.{} on a module not known statically", left.text(), *function))
                           : std::nullopt);
  }

  void mark_head(const std::vector<Node>& args)
  {
    if (args.empty()) return;
    auto head = args[0];
    if (head.type() == "binary_operator" && head.field("operator").text() == "when") {
      head = head.field("left");
    }
    if (head.type() == "call") m_heads.insert({head.start_byte(), head.end_byte()});
  }

  void handle_defdelegate(const Node& node, const std::vector<Node>& args)
  {
    mark_head(args);
    if (args.empty() || args[0].type() != "call") return;
    std::string function(args[0].field("target").text());
    auto arity = static_cast<std::uint32_t>(call_arguments(args[0]).size());
    for (const auto& [key, value] : keyword_pairs(args)) {
      if (key == "as") {
        if (auto atom = literal_atom(value)) function = *atom;
      }
    }
    for (const auto& [key, value] : keyword_pairs(args)) {
      if (key != "to") continue;
      auto module = m_resolver.resolve_expr(value);
      if (module.kind != Kind::module) continue;
      module.hops += 1;
      check_call(node, module, function, arity, {}, "defdelegate");
    }
  }

  void handle_apply(const Node& node, const std::vector<Node>& args, std::string_view how)
  {
    if (args.size() < 3) return; // apply(fun, args): the fun is scanned where it is written
    judge_mfa(node, args[0], args[1], args[2], 0, how, "");
  }

  // A call of a function that takes M, F, A and calls them in another
  // process, a task, from a timer or on a node (rules.h, MfaCall): the module
  // and function it is given are judged as apply's are.
  void handle_mfa_call(const Node& node, const std::string& module, std::string_view function,
                       std::optional<std::uint32_t> arity, const std::vector<Node>& args)
  {
    if (!arity || args.size() != *arity) return; // a capture (&spawn/3) calls nothing here
    const auto* row = find_mfa_call(module, function, *arity);
    if (row == nullptr) return;
    auto at = row->module_argument;
    auto how = module == "Kernel" ? fmt::format("{}/{}", function, *arity) : display_call(module, function, *arity);
    judge_mfa(node, args[at], args[at + 1], args[at + 2], row->prepended, how, row->where);
  }

  // The module, function and argument list given to apply or to a function
  // that takes M, F, A (`how` names it; `where` says where it calls them,
  // "in a new process"); the callee gets `prepended` arguments before the
  // list's.
  void judge_mfa(const Node& node, const Node& module_arg, const Node& function_arg, const Node& args_arg,
                 std::uint32_t prepended, std::string_view how, std::string_view where, int nested = 0)
  {
    auto module = m_resolver.resolve_expr(module_arg);
    auto function = literal_atom(function_arg);
    std::vector<Node> call_args;
    if (args_arg.type() == "list") call_args = args_arg.named_children();
    std::optional<std::uint32_t> arity;
    if (args_arg.type() == "list") arity = static_cast<std::uint32_t>(call_args.size()) + prepended;
    if (args_arg.type() == "integer") arity = parse_arity(args_arg);
    if (prepended > 0) call_args.clear(); // the first argument the callee gets is not the list's
    if (module.kind == Kind::module) {
      module.hops += 1 + nested; // each apply or function that takes M, F, A is a level
      if (function) {
        auto via = where.empty() ? std::string(how) : fmt::format("{} {}", how, where);
        // What it is given may itself take M, F, A: spawn(Kernel, :apply, [System, :cmd, args]).
        if (arity && call_args.size() == *arity && nested < 4) {
          const auto* row = find_mfa_call(module.name, *function, *arity);
          bool apply = *arity == 3 && *function == "apply" && (module.name == "Kernel" || module.name == ":erlang");
          if (row != nullptr || apply) {
            auto at = row != nullptr ? row->module_argument : 0;
            return judge_mfa(node, call_args[at], call_args[at + 1], call_args[at + 2],
                             row != nullptr ? row->prepended : 0,
                             fmt::format("{} of {}", display_call(module.name, *function, *arity), via),
                             row != nullptr ? row->where : "", nested + 1);
          }
        }
        return check_call(node, module, *function, arity, call_args, via);
      }
      if (m_rules.has_dangerous_functions(module.name)) {
        report_dynamic(node, Severity::high,
                       fmt::format("{} of a computed function of {} [HIGH RISK]", how, module.name));
      }
      return;
    }
    bool dangerous = function && m_rules.is_dangerous_function_name(*function);
    if (module.kind == Kind::dynamic) {
      auto severity = dynamic_severity(function);
      report_dynamic(node, severity,
                     fmt::format("{} through a module computed at run time ({}), function {} [{} RISK]",
                                 how, module.via, function ? *function : "computed too", upper(severity)));
    } else {
      note_dynamic_call(node, function, arity, std::string(how),
                        dangerous ? std::optional<std::string>(fmt::format(
                                      "{} of {} on a module not known statically", how, *function))
                                  : std::nullopt);
    }
  }

  static bool is_host_path(const Node& node, int guard = 0)
  {
    if (!node || guard > 8) return false;
    auto type = node.type();
    if (type == "string" || type == "charlist") {
      auto first = node.named_child(0);
      if (!first || first.type() != "quoted_content") return false;
      auto text = first.text();
      return text.starts_with('/') || text.starts_with('~');
    }
    if (type == "list") return is_host_path(node.named_child(0), guard + 1);
    if (type == "binary_operator" && node.field("operator").text() == "<>") {
      return is_host_path(node.field("left"), guard + 1);
    }
    if (type == "call" && node.field("target").type() == "dot" &&
        node.field("target").field("left").text() == "Path") {
      auto args = call_arguments(node);
      return !args.empty() && is_host_path(args[0], guard + 1);
    }
    return false;
  }

  void check_call(const Node& node, const Resolved& module, std::string_view function,
                  std::optional<std::uint32_t> arity, const std::vector<Node>& args,
                  std::string_view how)
  {
    if (m_scope == core::ScanScope::compiled && m_file_runs_in == RunsIn::host &&
        module.name.starts_with(kMixTasks) && code_runs_in() == RunsIn::host) {
      // The task's own code is not judged as host code (code_runs_in), so
      // host code must not reach it.
      report(node, "mix_task_reference", "mix_task", Severity::high,
             fmt::format("Call of the Mix task {} from code a host may load: a task's code is judged "
                         "only as code Mix runs [HIGH RISK]",
                         display_call(module.name, function, arity)),
             module.name, std::string(function), arity);
    }
    const auto& rules = m_rules;
    auto rule = rules.lookup(module.name, function);
    if (!rule) return;
    auto call = display_call(module.name, function, arity);
    if (module.hops > m_depth) {
      if (rule->severity > Severity::low) {
        Finding finding = make(node, "unresolved_indirection", "dynamic_dispatch", Severity::low,
                               fmt::format("Call reached through {} levels of indirection, beyond "
                                           "scan_depth {}: not followed",
                                           module.hops, m_depth));
        m_findings.push_back(std::move(finding));
      }
      return;
    }
    std::string type = rule->operation == "restricted_module" ? "restricted_module" : "dangerous_operation";
    std::string operation(rule->operation);
    auto severity = rule->severity;
    std::string message(rule->message);
    if (rule->path_argument && !args.empty() && is_host_path(args[0])) {
      type = "host_path_access";
      operation = "host_path_access";
      severity = std::max(severity, Severity::high);
      message = "Absolute host path in a file operation";
    }
    std::vector<std::string> through;
    if (!how.empty()) through.emplace_back(how);
    if (!module.via.empty()) through.push_back(module.via);
    std::string via;
    for (const auto& part : through) via += (via.empty() ? " (via " : ", ") + part;
    if (!via.empty()) via += ")";
    report(node, type, operation, severity,
           fmt::format("{} detected: {}{} [{} RISK]", message, call, via, upper(severity)), module.name,
           std::string(function), arity);
  }

  // --- value flow -------------------------------------------------------
  //
  // The file is judged as a whole (scan/value_flow.h): the walk notes the
  // modules used as values, the modules computed at run time, the atoms
  // naming functions and the calls on modules not known statically; finish()
  // judges the calls. Every word either half needs is vocabulary of the
  // prefilter (the module; the functions it can reach are marked bound), so
  // a cut parse sees what the whole parse sees.

  // The place of m_path[i], and the tuple, list, map or argument list it is
  // written in (through keyword pairs, => and |, and a default argument's \\).
  ValueFlow::Place place_of(std::size_t i, const Resolved& value) const
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
  [[nodiscard]] std::optional<int> judged_argument(const Node& call, bool piped) const
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
  [[nodiscard]] bool piped_into(std::size_t j) const
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
  [[nodiscard]] bool judged_position(std::size_t i) const
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
  void note_value(std::size_t i, const Resolved& value)
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

  void note_atom(const Node& node)
  {
    note_value(m_path.size() - 1, m_resolver.resolve_expr(node));
    if (node.type() != "atom") return;
    if (auto atom = literal_atom(node); atom && m_rules.is_value_flow_function(*atom)) {
      m_flow.note_name(*atom, place_of(m_path.size() - 1, {}));
    }
  }

  // A call that builds a module name (String.to_atom, Module.concat, ...):
  // a value, folded from constants or computed at run time.
  void note_builder(const Node& call)
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
  void note_dynamic_call(const Node& node, std::optional<std::string> function, std::optional<std::uint32_t> arity,
                         std::string call, std::optional<std::string> warning)
  {
    if (warning) {
      report_dynamic(node, Severity::low, std::move(*warning));
    } else {
      m_findings.push_back(make(node, "", "", Severity::low, "")); // a placeholder
    }
    m_dynamic_calls.emplace_back(m_findings.size() - 1, ValueFlow::Call{std::move(function), arity, std::move(call)});
  }

  void resolve_value_flow()
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
  [[nodiscard]] Severity dynamic_severity(const std::optional<std::string>& function) const
  {
    if (!function) return Severity::medium;
    return m_rules.is_dangerous_function_name(*function) ? Severity::high : Severity::low;
  }

  static std::string upper(Severity severity)
  {
    std::string out(to_string(severity));
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
    return out;
  }

  void report_dynamic(const Node& node, Severity severity, std::string message)
  {
    report(node, "dynamic_dispatch", "dynamic_dispatch", severity, std::move(message), std::nullopt,
           std::nullopt, std::nullopt);
  }

  Finding make(const Node& node, std::string type, std::string operation, Severity severity,
               std::string message)
  {
    Finding finding;
    finding.type = std::move(type);
    finding.operation = std::move(operation);
    finding.severity = severity;
    finding.message = std::move(message);
    finding.runs_in = code_runs_in();
    fill_position(finding, node);
    return finding;
  }

  void report(const Node& node, std::string type, std::string operation, Severity severity,
              std::string message, std::optional<std::string> module,
              std::optional<std::string> function, std::optional<std::uint32_t> arity)
  {
    auto finding = make(node, std::move(type), std::move(operation), severity, std::move(message));
    finding.module = std::move(module);
    finding.function = std::move(function);
    finding.arity = arity;
    m_findings.push_back(std::move(finding));
  }

  // Where the node being visited runs: mix inside the do block of a
  // `defmodule Mix.Tasks.*`, host anywhere else. Code in a quote lands in
  // whatever module unquotes it, and a defimpl or defprotocol inside a task
  // is a module of its own that protocol dispatch reaches from any caller:
  // both are host code. A defmodule written without a do block (`, do:`) is
  // not told apart, so its code counts as host code too.
  [[nodiscard]] RunsIn code_runs_in() const
  {
    for (std::size_t i = m_path.size(); i-- > 0;) {
      const auto& node = m_path[i];
      if (node.type() != "call") continue;
      if (type_is_call_named(node, "quote") || type_is_call_named(node, "defimpl") ||
          type_is_call_named(node, "defprotocol")) {
        return RunsIn::host;
      }
      if (!type_is_call_named(node, "defmodule")) continue;
      bool in_do_block = i + 1 < m_path.size() && m_path[i + 1].type() == "do_block";
      return in_do_block && m_resolver.current_module().starts_with(kMixTasks) ? RunsIn::mix : RunsIn::host;
    }
    return RunsIn::host;
  }

  void fill_position(Finding& finding, const Node& node)
  {
    auto pos = node.start();
    finding.file = std::string(m_file);
    finding.line = pos.line;
    finding.column = pos.column;
    finding.matched_text = clip(node.text());
    std::string around;
    for (auto line = pos.line > 1 ? pos.line - 1 : 1; line <= pos.line + 1; ++line) {
      auto text = m_tree.line(line);
      if (line > pos.line && text.empty()) break;
      if (!around.empty()) around += '\n';
      around += text.size() > 240 ? std::string(text.substr(0, 240)) + "..." : std::string(text);
    }
    finding.surrounding_code = std::move(around);
  }

  std::string_view m_file;
  const syntax::Tree& m_tree;
  const RuleSet& m_rules;
  int m_depth;
  core::ScanScope m_scope;
  RunsIn m_file_runs_in;
  std::set<std::pair<std::uint32_t, std::uint32_t>> m_heads;
  std::optional<Node> m_first_error;
  std::vector<Node> m_path;
  std::vector<Finding> m_findings;
  Resolver m_resolver;
  ValueFlow m_flow;
  std::vector<std::pair<std::size_t, ValueFlow::Call>> m_dynamic_calls; // index of its finding in m_findings
};

} // namespace

namespace {

std::expected<std::vector<Finding>, std::string> scan_whole(std::string_view file, std::string source,
                                                            const Report& report)
{
  auto tree = syntax::Tree::parse(std::move(source));
  if (!tree) return std::unexpected(tree.error());
  ElixirScanner scanner(file, *tree, report);
  scanner.run();
  return std::move(scanner.findings());
}

// The scan with inert blocks cut out of the parse (scan/elixir_prefilter.h),
// or nullopt when the file needs a whole parse.
std::optional<std::vector<Finding>> scan_skipping(std::string_view file, const std::string& source,
                                                  const Report& report)
{
  constexpr int kRounds = 4;
  auto lexed = syntax::lex_elixir(source);
  if (!lexed) return std::nullopt;
  WordSet bound;
  for (int round = 0; round < kRounds; ++round) {
    auto occurrences = vocabulary_in(source, *lexed, report.rules(), bound);
    // Nothing of the vocabulary anywhere: every statement would be cut.
    if (occurrences.empty()) return std::vector<Finding>{};
    auto skipped = blocks_to_skip(*lexed, occurrences);
    if (skipped.empty()) return std::nullopt;
    auto tree = syntax::Tree::parse_without(source, skipped);
    if (!tree || tree->has_errors() || !parse_agrees_with_lexer(*tree, *lexed, occurrences, skipped)) {
      return std::nullopt;
    }
    ElixirScanner scanner(file, *tree, report);
    scanner.run();
    bool grew = false;
    for (const auto& name : scanner.bound_names()) grew = bound.insert(name).second || grew;
    if (!grew || !bound_name_skipped(source, skipped, bound)) return std::move(scanner.findings());
  }
  return std::nullopt;
}

} // namespace

std::expected<void, std::string> scan_elixir_source(std::string_view file, std::string source, Report& report,
                                                    ElixirParse parse)
{
  std::optional<std::vector<Finding>> findings;
  if (parse == ElixirParse::skip_inert_blocks) findings = scan_skipping(file, source, report);
  if (!findings) {
    auto whole = scan_whole(file, std::move(source), report);
    if (!whole) return std::unexpected(whole.error());
    findings = std::move(*whole);
  }
  for (auto& finding : *findings) report.add(std::move(finding));
  return {};
}

} // namespace sandbox::scan
