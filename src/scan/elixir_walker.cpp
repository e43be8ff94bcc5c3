// The walk of an Elixir syntax tree (scan/elixir_walker.h) and the judging of
// the calls it meets: local and remote calls, captures, @on_load, apply and
// the functions that take a module, a function name and an argument list.

#include "scan/elixir_walker.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::scan::elixir {

Walker::Walker(std::string_view file, const syntax::Tree& tree, const Report& report)
    : m_file(file), m_tree(tree), m_rules(report.rules()), m_depth(report.scan_depth()),
      m_scope(report.scope()), m_file_runs_in(report.file_runs_in()), m_resolver(report.rules()),
      m_flow(report.rules())
{
}

void Walker::run()
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

void Walker::finish()
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
Node Walker::parent_of(const Node& node) const
{
  if (m_path.size() >= 2 && m_path.back() == node) return m_path[m_path.size() - 2];
  return node.parent();
}

// Returns true when the node opens a lexical scope.
bool Walker::enter(const Node& node)
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

void Walker::handle_unary(const Node& node)
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

std::optional<std::uint32_t> Walker::parse_arity(const Node& node)
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
std::optional<std::uint32_t> Walker::call_arity(const Node& call, std::size_t arg_count,
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

void Walker::handle_call(const Node& node)
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

void Walker::mark_head(const std::vector<Node>& args)
{
  if (args.empty()) return;
  auto head = args[0];
  if (head.type() == "binary_operator" && head.field("operator").text() == "when") {
    head = head.field("left");
  }
  if (head.type() == "call") m_heads.insert({head.start_byte(), head.end_byte()});
}

void Walker::handle_defdelegate(const Node& node, const std::vector<Node>& args)
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

void Walker::handle_apply(const Node& node, const std::vector<Node>& args, std::string_view how)
{
  if (args.size() < 3) return; // apply(fun, args): the fun is scanned where it is written
  judge_mfa(node, args[0], args[1], args[2], 0, how, "");
}

// A call of a function that takes M, F, A and calls them in another
// process, a task, from a timer or on a node (rules.h, MfaCall): the module
// and function it is given are judged as apply's are.
void Walker::handle_mfa_call(const Node& node, const std::string& module, std::string_view function,
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
void Walker::judge_mfa(const Node& node, const Node& module_arg, const Node& function_arg, const Node& args_arg,
                       std::uint32_t prepended, std::string_view how, std::string_view where, int nested)
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

bool Walker::is_host_path(const Node& node, int guard)
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

void Walker::check_call(const Node& node, const Resolved& module, std::string_view function,
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

} // namespace sandbox::scan::elixir
