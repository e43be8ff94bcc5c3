#include "scan/elixir_scanner.h"

#include "scan/elixir_prefilter.h"
#include "syntax/elixir_lexer.h"
#include "syntax/elixir_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace sandbox::scan {

namespace {

using syntax::Node;

enum class Kind { unknown, module, dynamic };

// What an expression in module position evaluates to, as far as the source
// tells: a module (and through how many levels of indirection), a module
// computed at run time, or nothing known.
struct Resolved {
  Kind kind = Kind::unknown;
  std::string name;
  int hops = 0;
  std::string via; // how it was resolved, for the message
};

struct Import {
  std::string module;
  int hops = 0;
  bool only_given = false;
  std::vector<std::string> only;
  std::vector<std::string> except;
};

struct Scope {
  std::vector<std::pair<std::string, Resolved>> aliases; // short name -> module
  std::vector<Import> imports;
  std::vector<std::pair<std::string, Resolved>> variables;
  std::vector<std::pair<std::string, Resolved>> attributes;
  std::string module; // the enclosing defmodule, "" outside one
};

constexpr std::array kDefinitions = {"def",      "defp",      "defmacro", "defmacrop",
                                     "defguard", "defguardp", "defn",     "defnp"};

bool is_definition(std::string_view name)
{
  return std::find(kDefinitions.begin(), kDefinitions.end(), name) != kDefinitions.end();
}

std::string_view strip_keyword(std::string_view key)
{
  while (!key.empty() && (key.back() == ' ' || key.back() == ':')) key.remove_suffix(1);
  return key;
}

std::vector<Node> call_arguments(const Node& call)
{
  auto args = call.first_child_of_type("arguments");
  return args ? args.named_children() : std::vector<Node>{};
}

// The keyword arguments of a call as (key, value) pairs.
std::vector<std::pair<std::string_view, Node>> keyword_pairs(const std::vector<Node>& args)
{
  std::vector<std::pair<std::string_view, Node>> out;
  for (const auto& arg : args) {
    if (arg.type() != "keywords") continue;
    for (const auto& pair : arg.named_children()) {
      if (pair.type() != "pair") continue;
      out.emplace_back(strip_keyword(pair.field("key").text()), pair.field("value"));
    }
  }
  return out;
}

// The text of a string or charlist without interpolation; "a" <> "b" folds.
std::optional<std::string> literal_string(const Node& node)
{
  auto type = node.type();
  if (type == "string" || type == "charlist") {
    std::string out;
    for (const auto& child : node.named_children()) {
      if (child.type() != "quoted_content") return std::nullopt;
      out += child.text();
    }
    return out;
  }
  if (type == "binary_operator" && node.field("operator").text() == "<>") {
    auto left = literal_string(node.field("left"));
    auto right = literal_string(node.field("right"));
    if (left && right) return *left + *right;
  }
  return std::nullopt;
}

// :cmd, :"cmd" -> cmd
std::optional<std::string> literal_atom(const Node& node)
{
  if (node.type() == "atom") {
    auto text = node.text();
    return std::string(text.starts_with(':') ? text.substr(1) : text);
  }
  if (node.type() == "quoted_atom") {
    std::string out;
    for (const auto& child : node.named_children()) {
      if (child.type() != "quoted_content") return std::nullopt;
      out += child.text();
    }
    return out;
  }
  return std::nullopt;
}

class ElixirScanner {
public:
  ElixirScanner(std::string_view file, const syntax::Tree& tree, const RuleSet& rules, int depth)
      : m_file(file), m_tree(tree), m_rules(rules), m_depth(depth)
  {
    m_scopes.emplace_back();
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
      if (scoped.back() && m_scopes.size() > 1) m_scopes.pop_back();
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
  [[nodiscard]] const WordSet& bound_names() const { return m_bound; }

private:
  [[nodiscard]] bool matters(const Resolved& value) const
  {
    return value.kind == Kind::dynamic || (value.kind == Kind::module && m_rules.module_matters(value.name));
  }

  void bind(std::vector<std::pair<std::string, Resolved>>& names, std::string name, Resolved value)
  {
    if (matters(value)) m_bound.insert(name);
    names.emplace_back(std::move(name), std::move(value));
  }

  void finish()
  {
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
      open_scope(node);
      return true;
    } else if (type == "unary_operator") {
      handle_unary(node);
    } else if (type == "binary_operator") {
      if (node.field("operator").text() == "=") bind_variable(node);
    }
    return false;
  }

  Scope& scope() { return m_scopes.back(); }
  [[nodiscard]] const Scope& scope() const { return m_scopes.back(); }

  void open_scope(const Node& node)
  {
    Scope next;
    next.module = scope().module;
    auto parent = parent_of(node);
    if (type_is_call_named(parent, "defmodule")) {
      auto args = call_arguments(parent);
      if (!args.empty() && args[0].type() == "alias") {
        auto text = std::string(args[0].text());
        std::string full;
        if (text.starts_with("Elixir.")) {
          full = text.substr(7);
        } else if (!scope().module.empty()) {
          full = scope().module + "." + text;
          // A nested module is aliased by its last name in the enclosing scope.
          Resolved nested{Kind::module, full, 0, "nested module"};
          bind(scope().aliases, text, nested);
        } else {
          full = resolve_alias(text).name;
        }
        next.module = full;
        if (m_rules.module_matters(full)) m_bound.insert("__MODULE__");
      }
    }
    m_scopes.push_back(std::move(next));
  }

  static bool type_is_call_named(const Node& node, std::string_view name)
  {
    if (!node || node.type() != "call") return false;
    auto target = node.field("target");
    return target && target.type() == "identifier" && target.text() == name;
  }

  // --- resolution -------------------------------------------------------

  template <typename Entries>
  const Resolved* find_in_scopes(Entries Scope::*member, std::string_view name) const
  {
    for (auto scope_it = m_scopes.rbegin(); scope_it != m_scopes.rend(); ++scope_it) {
      const auto& entries = (*scope_it).*member;
      for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
        if (it->first == name) return &it->second;
      }
    }
    return nullptr;
  }

  Resolved resolve_alias(std::string_view text) const
  {
    if (text.starts_with("Elixir.")) return {Kind::module, std::string(text.substr(7)), 0, ""};
    if (text == "Elixir") return {Kind::unknown, "", 0, ""};
    auto dot = text.find('.');
    auto head = text.substr(0, dot);
    if (const auto* entry = find_in_scopes(&Scope::aliases, head)) {
      Resolved out = *entry;
      if (out.kind == Kind::module && dot != std::string_view::npos) {
        out.name += std::string(text.substr(dot));
      }
      return out;
    }
    return {Kind::module, std::string(text), 0, ""};
  }

  // A call that builds an atom or module name from data.
  static bool is_builder(const Resolved& module, std::string_view function)
  {
    return module.kind == Kind::module && builds_module_name(module.name, function);
  }

  // Folds a builder call whose arguments are constants into the module it names.
  std::optional<std::string> fold_builder(std::string_view module, const std::vector<Node>& args) const
  {
    if (args.empty()) return std::nullopt;
    if (module == "Module") {
      std::vector<Node> parts = args;
      if (args.size() == 1 && args[0].type() == "list") parts = args[0].named_children();
      std::string out;
      for (const auto& part : parts) {
        std::string piece;
        if (part.type() == "alias") {
          auto resolved = resolve_alias(part.text());
          if (resolved.kind != Kind::module) return std::nullopt;
          piece = resolved.name;
        } else if (auto text = literal_string(part)) {
          piece = *text;
        } else if (auto atom = literal_atom(part)) {
          piece = *atom;
        } else {
          return std::nullopt;
        }
        if (piece.starts_with("Elixir.")) piece.erase(0, 7);
        if (piece == "Elixir" || piece.empty()) continue;
        if (!out.empty()) out += '.';
        out += piece;
      }
      if (out.empty()) return std::nullopt;
      return out;
    }
    auto text = literal_string(args[0]);
    if (!text || text->empty()) return std::nullopt;
    return module_from_atom(*text);
  }

  Resolved resolve_builder(const Resolved& module, std::string_view function,
                           const std::vector<Node>& args) const
  {
    auto what = display_call(module.name, function);
    if (auto folded = fold_builder(module.name, args)) {
      return {Kind::module, *folded, 1, fmt::format("a module built from constants with {}", what)};
    }
    return {Kind::dynamic, "", 0, what};
  }

  Resolved resolve_expr(const Node& node, int guard = 0) const
  {
    if (!node || guard > 64) return {};
    auto type = node.type();
    if (type == "alias") {
      return resolve_alias(node.text());
    }
    if (type == "atom" || type == "quoted_atom") {
      if (type == "quoted_atom" && node.first_child_of_type("interpolation")) {
        return {Kind::dynamic, "", 0, "an interpolated atom"};
      }
      auto atom = literal_atom(node);
      if (!atom || atom->empty()) return {};
      if (*atom == "true" || *atom == "false" || *atom == "nil") return {};
      return {Kind::module, module_from_atom(*atom), 0, ""};
    }
    if (type == "identifier") {
      if (node.text() == "__MODULE__") {
        if (scope().module.empty()) return {};
        return {Kind::module, scope().module, 0, ""};
      }
      if (const auto* bound = find_in_scopes(&Scope::variables, node.text())) {
        Resolved out = *bound;
        out.hops += 1;
        out.via = fmt::format("variable {}", node.text());
        return out;
      }
      return {};
    }
    if (type == "unary_operator" && node.field("operator").text() == "@") {
      auto operand = node.field("operand");
      auto name = operand.type() == "identifier" ? operand.text()
                  : operand.type() == "call"     ? operand.field("target").text()
                                                 : std::string_view{};
      if (const auto* attr = find_in_scopes(&Scope::attributes, name)) {
        Resolved out = *attr;
        out.hops += 1;
        out.via = fmt::format("attribute @{}", name);
        return out;
      }
      return {};
    }
    if (type == "call") {
      auto target = node.field("target");
      auto args = call_arguments(node);
      if (target.type() == "identifier" && target.text() == "unquote" && !args.empty()) {
        return resolve_expr(args[0], guard + 1);
      }
      if (target.type() == "identifier" && target.text() == "__MODULE__" && !scope().module.empty()) {
        return {Kind::module, scope().module, 0, ""};
      }
      if (target.type() == "dot") {
        auto module = resolve_expr(target.field("left"), guard + 1);
        auto function = target.field("right").text();
        if (is_builder(module, function)) return resolve_builder(module, function, args);
      }
      return {};
    }
    if (type == "binary_operator" && node.field("operator").text() == "|>") {
      auto right = node.field("right");
      if (right.type() == "call" && right.field("target").type() == "dot") {
        auto target = right.field("target");
        auto module = resolve_expr(target.field("left"), guard + 1);
        auto function = target.field("right").text();
        if (is_builder(module, function)) {
          auto args = call_arguments(right);
          args.insert(args.begin(), node.field("left"));
          return resolve_builder(module, function, args);
        }
      }
      return {};
    }
    if (type == "block" && node.named_child_count() == 1) {
      return resolve_expr(node.named_child(0), guard + 1);
    }
    return {};
  }

  // --- declarations -----------------------------------------------------

  void declare_alias(const std::vector<Node>& args)
  {
    if (args.empty()) return;
    const auto& first = args[0];
    std::optional<Node> as_name;
    for (const auto& [key, value] : keyword_pairs(args)) {
      if (key == "as" && value.type() == "alias") as_name = value;
    }
    // alias Elixir.{System, File} / alias Foo.{Bar, Baz}
    if (first.type() == "dot" && first.field("right").type() == "tuple") {
      auto base = resolve_expr(first.field("left"));
      std::string prefix = base.kind == Kind::module ? base.name : "";
      if (first.field("left").text() == "Elixir") prefix.clear();
      for (const auto& item : first.field("right").named_children()) {
        if (item.type() != "alias") continue;
        auto text = std::string(item.text());
        std::string full = prefix.empty() ? text : prefix + "." + text;
        auto last = text.substr(text.rfind('.') == std::string::npos ? 0 : text.rfind('.') + 1);
        int hops = full == last ? 0 : 1;
        bind(scope().aliases, last, Resolved{Kind::module, full, base.hops + hops, fmt::format("alias {}", last)});
      }
      return;
    }
    auto target = resolve_expr(first);
    if (target.kind == Kind::unknown) return;
    std::string short_name;
    if (as_name) {
      short_name = std::string(as_name->text());
    } else if (first.type() == "alias") {
      auto text = first.text();
      auto dot = text.rfind('.');
      short_name = std::string(dot == std::string_view::npos ? text : text.substr(dot + 1));
    } else {
      return;
    }
    Resolved entry = target;
    if (!(target.kind == Kind::module && target.name == short_name)) entry.hops += 1;
    entry.via = fmt::format("alias {}", short_name);
    bind(scope().aliases, std::move(short_name), std::move(entry));
  }

  void declare_import(const std::vector<Node>& args)
  {
    if (args.empty()) return;
    auto target = resolve_expr(args[0]);
    if (target.kind != Kind::module) return;
    Import entry;
    entry.module = target.name;
    entry.hops = target.hops + 1;
    for (const auto& [key, value] : keyword_pairs(args)) {
      if (key != "only" && key != "except") continue;
      std::vector<std::string> names;
      if (value.type() == "list") {
        for (const auto& item : value.named_children()) {
          if (item.type() != "keywords") continue;
          for (const auto& pair : item.named_children()) {
            names.emplace_back(strip_keyword(pair.field("key").text()));
          }
        }
      } else {
        continue; // only: :functions / :macros import everything of that kind
      }
      if (key == "only") {
        entry.only_given = true;
        entry.only = std::move(names);
      } else {
        entry.except = std::move(names);
      }
    }
    if (m_rules.module_matters(entry.module)) {
      if (entry.only_given) {
        for (const auto& name : entry.only) m_bound.insert(name);
      } else {
        for (auto name : m_rules.functions_with_rows(entry.module)) m_bound.emplace(name);
      }
    }
    scope().imports.push_back(std::move(entry));
  }

  std::optional<Resolved> resolve_import(std::string_view name) const
  {
    for (auto scope_it = m_scopes.rbegin(); scope_it != m_scopes.rend(); ++scope_it) {
      for (auto it = scope_it->imports.rbegin(); it != scope_it->imports.rend(); ++it) {
        auto listed = [&](const std::vector<std::string>& list) {
          return std::find(list.begin(), list.end(), name) != list.end();
        };
        if (listed(it->except)) continue;
        bool match = it->only_given ? listed(it->only) : m_rules.has_row(it->module, name);
        if (match) {
          return Resolved{Kind::module, it->module, it->hops, fmt::format("import {}", it->module)};
        }
      }
    }
    return std::nullopt;
  }

  void bind_variable(const Node& node)
  {
    auto left = node.field("left");
    if (left.type() != "identifier") return;
    auto value = resolve_expr(node.field("right"));
    if (value.kind == Kind::unknown) return;
    bind(scope().variables, std::string(left.text()), std::move(value));
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
      }
      if (args.size() == 1) {
        auto value = resolve_expr(args[0]);
        if (value.kind != Kind::unknown) bind(scope().attributes, std::string(name), value);
      }
    } else if (op == "&" && operand.type() == "binary_operator" &&
               operand.field("operator").text() == "/" && operand.field("left").type() == "identifier") {
      // &cmd/1 after an import
      auto name = operand.field("left").text();
      if (auto module = resolve_import(name)) {
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
      if (name == "alias" || name == "require") return declare_alias(args);
      if (name == "import") return declare_import(args);
      if (name == "apply") return handle_apply(node, args, "apply");
      if (is_definition(name)) {
        mark_head(args);
        return;
      }
      if (name == "defdelegate") return handle_defdelegate(node, args);
      if (name == "defmodule" || name == "quote" || name == "unquote") return;
      if (auto module = resolve_import(name)) {
        return check_call(node, *module, name, arity, args, "");
      }
      check_call(node, Resolved{Kind::module, "Kernel", 0, ""}, name, arity, args, "");
      return;
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
    auto module = resolve_expr(left);
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
      return check_call(node, module, *function, arity, args, "");
    }
    if (module.kind == Kind::dynamic) {
      auto severity = dynamic_severity(function);
      report_dynamic(node, severity,
                     fmt::format("Call through a module computed at run time ({}){} [{} RISK]",
                                 module.via, function ? "." + *function : ".<computed>",
                                 upper(severity)));
      return;
    }
    if (function && left.type() == "identifier" && has_args &&
        m_rules.is_dangerous_function_name(*function)) {
      report_dynamic(node, Severity::low,
                     fmt::format("{}.{} on a module not known statically", left.text(), *function));
    }
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
      auto module = resolve_expr(value);
      if (module.kind != Kind::module) continue;
      module.hops += 1;
      check_call(node, module, function, arity, {}, "defdelegate");
    }
  }

  void handle_apply(const Node& node, const std::vector<Node>& args, std::string_view how)
  {
    if (args.size() < 3) return; // apply(fun, args): the fun is scanned where it is written
    auto module = resolve_expr(args[0]);
    auto function = literal_atom(args[1]);
    std::vector<Node> call_args;
    if (args[2].type() == "list") call_args = args[2].named_children();
    std::optional<std::uint32_t> arity;
    if (args[2].type() == "list") arity = static_cast<std::uint32_t>(call_args.size());
    if (args[2].type() == "integer") arity = parse_arity(args[2]);
    if (module.kind == Kind::module) {
      module.hops += 1;
      if (function) return check_call(node, module, *function, arity, call_args, how);
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
    } else if (dangerous) {
      report_dynamic(node, Severity::low,
                     fmt::format("{} of {} on a module not known statically", how, *function));
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
  std::vector<Scope> m_scopes;
  std::set<std::pair<std::uint32_t, std::uint32_t>> m_heads;
  std::optional<Node> m_first_error;
  std::vector<Node> m_path;
  std::vector<Finding> m_findings;
  WordSet m_bound;
};

} // namespace

namespace {

std::expected<std::vector<Finding>, std::string> scan_whole(std::string_view file, std::string source,
                                                            const Report& report)
{
  auto tree = syntax::Tree::parse(std::move(source));
  if (!tree) return std::unexpected(tree.error());
  ElixirScanner scanner(file, *tree, report.rules(), report.scan_depth());
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
    ElixirScanner scanner(file, *tree, report.rules(), report.scan_depth());
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
