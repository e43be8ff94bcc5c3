// The Elixir side of the confinement analysis (scan/confinement_facts.h): one
// walk of the syntax tree, with the scanner's resolver (scan/elixir_resolver.h)
// keeping aliases, variables and attributes that hold modules, cuts the file
// into regions (what runs when the file is compiled, each function's clauses,
// each macro) and records in each the calls and other events the verdict
// follows.

#include "scan/confinement_facts.h"

#include "core/options.h"
#include "scan/elixir_resolver.h"
#include "scan/findings.h"
#include "scan/rules.h"
#include "syntax/elixir_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <utility>

namespace sandbox::scan::confinement {

namespace {

using elixir::Kind;
using elixir::Resolved;
using syntax::Node;

using NodeId = const void*;
NodeId id_of(const Node& node) { return node.raw().id; }

// The named children in order, read with a cursor (indexing children is
// linear in tree-sitter).
std::vector<Node> children_of(const Node& node)
{
  std::vector<Node> out;
  TSTreeCursor cursor = ts_tree_cursor_new(node.raw());
  if (ts_tree_cursor_goto_first_child(&cursor)) {
    do {
      TSNode child = ts_tree_cursor_current_node(&cursor);
      if (ts_node_is_named(child)) out.push_back(node.same_tree(child));
    } while (ts_tree_cursor_goto_next_sibling(&cursor));
  }
  ts_tree_cursor_delete(&cursor);
  return out;
}

constexpr std::array kTypespecs = {"spec", "type", "typep", "opaque", "callback", "macrocallback"};
constexpr std::array kHooks = {std::pair{"before_compile", "__before_compile__"},
                               std::pair{"after_compile", "__after_compile__"},
                               std::pair{"after_verify", "__after_verify__"}};
constexpr std::array kStandardSigils = {"s", "S", "c", "C", "w", "W", "r", "R", "D", "T", "N", "U"};
constexpr std::array kAccessCallbacks = {"fetch", "get_and_update", "pop"};

template <typename Array>
bool contains(const Array& array, std::string_view value)
{
  return std::find(array.begin(), array.end(), value) != array.end();
}

class Collector {
public:
  Collector(const std::string& file, const syntax::Tree& tree)
      : m_tree(tree), m_rules(core::default_restricted_modules(), {}), m_resolver(m_rules)
  {
    m_facts.file = file;
    m_facts.regions.push_back(Region{file, "", "", true, false, false, {}});
    m_frames.push_back(Frame{});
    m_active.push_back(Active{0, ""});
  }

  FileFacts run();

private:
  struct Frame {
    std::string module;
    std::vector<std::string> imports;
    bool impl = false;
    bool resolver_scope = false;
  };
  struct Active {
    std::size_t region = 0;
    std::string context; // "" for the file's compile-time region: the frame says
  };
  struct Entered {
    bool descend = true;
    int regions = 0;
    bool frame = false;
    bool quote = false; // pushed onto m_quoted
  };

  Entered enter(const Node& node, const Node& parent);
  void enter_scope(const Node& node, const Node& parent, Entered& entered);
  Entered handle_call(const Node& node, const Node& parent);
  void handle_definition(const Node& node, std::string_view kind, const std::vector<Node>& args);
  void handle_defdelegate(const std::vector<Node>& args);
  void handle_defimpl(const Node& node, const std::vector<Node>& args);
  void handle_apply(const Node& node, const std::vector<Node>& args);
  Entered handle_attribute(const Node& operand);
  void add_module(std::string name, const Node& at);

  [[nodiscard]] Resolved resolve_module(const Node& node, int guard = 0) const;
  Event& add(EventKind kind, const Node& at);
  void problem(const Node& at, std::string text);
  [[nodiscard]] std::string context() const;
  [[nodiscard]] const Frame& frame() const { return m_frames.back(); }

  const syntax::Tree& m_tree;
  RuleSet m_rules;
  elixir::Resolver m_resolver;
  FileFacts m_facts;
  std::vector<Frame> m_frames;
  std::vector<Active> m_active;
  std::map<NodeId, Active> m_region_at;    // a function body or unquote fragment: its region
  std::map<NodeId, Frame> m_frame_at;      // a defimpl/defprotocol do block: its module
  std::set<NodeId> m_heads;                // calls that are definition heads, not calls
  std::set<NodeId> m_not_values;           // aliases naming what is defined, used or called
  std::set<std::string> m_access_modules;  // @behaviour Access
  std::vector<bool> m_quoted{false};       // inside a quote, innermost last
  bool m_parse_error = false;
};

FileFacts Collector::run()
{
  struct Item {
    Node node;
    Node parent;
    bool leaving = false;
    Entered entered;
  };
  std::vector<Item> stack;
  stack.push_back(Item{m_tree.root(), Node{}, false, {}});
  while (!stack.empty()) {
    auto item = stack.back();
    stack.pop_back();
    if (item.leaving) {
      for (int i = 0; i < item.entered.regions; ++i) m_active.pop_back();
      if (item.entered.quote) m_quoted.pop_back();
      if (item.entered.frame) {
        if (frame().resolver_scope) m_resolver.close_scope();
        m_frames.pop_back();
      }
      continue;
    }
    auto entered = enter(item.node, item.parent);
    stack.push_back(Item{item.node, item.parent, true, entered});
    if (!entered.descend) continue;
    auto children = children_of(item.node);
    for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(Item{*it, item.node, false, {}});
  }
  // The standard library calls an Access implementation's callbacks on
  // data, so they run whenever such data is used at compile time.
  for (auto& region : m_facts.regions) {
    if (m_access_modules.contains(region.module) && contains(kAccessCallbacks, region.function)) {
      region.compile_time = true;
    }
  }
  return std::move(m_facts);
}

std::string Collector::context() const
{
  if (!m_active.back().context.empty()) return m_active.back().context;
  return frame().module.empty() ? "top-level code" : fmt::format("module body of {}", frame().module);
}

Event& Collector::add(EventKind kind, const Node& at)
{
  auto& region = m_facts.regions[m_active.back().region];
  Event event;
  event.kind = kind;
  event.line = at.start().line;
  event.context = context();
  event.current_module = frame().module;
  event.quoted = m_quoted.back();
  region.events.push_back(std::move(event));
  return region.events.back();
}

void Collector::problem(const Node& at, std::string text) { add(EventKind::problem, at).text = std::move(text); }

void Collector::add_module(std::string name, const Node& at)
{
  m_facts.modules.push_back(DefinedModule{std::move(name), at.start().line});
}

Resolved Collector::resolve_module(const Node& node, int guard) const
{
  if (!node || guard > 16) return {};
  if (node.type() == "identifier" && node.text() == "__MODULE__" && !frame().module.empty()) {
    return {Kind::module, frame().module, 0, ""};
  }
  if (node.type() == "dot" && node.field("right").type() == "alias") {
    auto base = resolve_module(node.field("left"), guard + 1);
    if (base.kind == Kind::module) base.name += "." + std::string(node.field("right").text());
    return base;
  }
  return m_resolver.resolve_expr(node);
}

Collector::Entered Collector::enter(const Node& node, const Node& parent)
{
  Entered entered;
  if (auto at = m_region_at.find(id_of(node)); at != m_region_at.end()) {
    m_active.push_back(at->second);
    entered.regions = 1;
  }
  auto type = node.type();
  if (node.is_error() && !m_parse_error) {
    m_parse_error = true;
    m_active.push_back(Active{0, "the file"});
    problem(node, "does not parse cleanly, so its code cannot be followed");
    m_active.pop_back();
  }
  if (type == "call") {
    auto handled = handle_call(node, parent);
    handled.regions += entered.regions;
    return handled;
  }
  if (type == "do_block" || type == "anonymous_function") {
    enter_scope(node, parent, entered);
  } else if (type == "unary_operator") {
    auto op = node.field("operator").text();
    auto operand = node.field("operand");
    if (op == "@" && operand.type() == "call" && operand.field("target").type() == "identifier") {
      auto handled = handle_attribute(operand);
      entered.descend = handled.descend;
    } else if (op == "&" && operand.type() == "binary_operator" && operand.field("operator").text() == "/" &&
               operand.field("left").type() == "identifier") {
      auto& event = add(EventKind::local_call, node);
      event.function = operand.field("left").text();
      auto arity = operand.field("right").text();
      if (!arity.empty() && std::all_of(arity.begin(), arity.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        event.arity = static_cast<std::uint32_t>(std::min<std::size_t>(std::stoul(std::string(arity)), 255));
      }
      event.imports = {};
      for (auto it = m_frames.rbegin(); it != m_frames.rend(); ++it) {
        event.imports.insert(event.imports.end(), it->imports.rbegin(), it->imports.rend());
      }
    }
  } else if (type == "binary_operator") {
    if (node.field("operator").text() == "=") m_resolver.bind_variable(node);
  } else if (type == "alias") {
    auto parent_type = parent ? parent.type() : std::string_view{};
    if (!m_not_values.contains(id_of(node)) && parent_type != "dot" && parent_type != "struct") {
      add(EventKind::module_value, node).module = m_resolver.resolve_alias(node.text()).name;
    }
  } else if (type == "quoted_atom") {
    if (node.first_child_of_type("interpolation")) {
      problem(node, fmt::format("builds an atom from data ({})", clip(node.text(), 40)));
    }
  } else if (type == "sigil") {
    auto name = node.first_child_of_type("sigil_name").text();
    if (!contains(kStandardSigils, name)) {
      auto& event = add(EventKind::local_call, node);
      event.function = fmt::format("sigil_{}", name);
      event.arity = 2;
      for (auto it = m_frames.rbegin(); it != m_frames.rend(); ++it) {
        event.imports.insert(event.imports.end(), it->imports.rbegin(), it->imports.rend());
      }
    }
  }
  return entered;
}

// A do block or anonymous function opens a scope: the resolver's and ours
// (imports, the enclosing module).
void Collector::enter_scope(const Node& node, const Node& parent, Entered& entered)
{
  m_resolver.open_scope(parent);
  Frame next;
  next.module = frame().module;
  next.impl = frame().impl;
  next.resolver_scope = true;
  if (auto at = m_frame_at.find(id_of(node)); at != m_frame_at.end()) {
    next.module = at->second.module;
    next.impl = at->second.impl;
  } else if (elixir::type_is_call_named(parent, "defmodule")) {
    next.module = m_resolver.current_module();
    next.impl = false;
    if (!next.module.empty()) add_module(next.module, parent);
  }
  m_frames.push_back(std::move(next));
  entered.frame = true;
}

Collector::Entered Collector::handle_call(const Node& node, const Node& parent)
{
  Entered entered;
  auto target = node.field("target");
  if (!target || m_heads.contains(id_of(node))) return entered;
  auto args = elixir::call_arguments(node);
  bool has_args = static_cast<bool>(node.first_child_of_type("arguments"));
  std::uint32_t arity = static_cast<std::uint32_t>(args.size());
  if (parent && parent.type() == "binary_operator" && parent.field("operator").text() == "|>" &&
      parent.field("right") == node) {
    ++arity;
  }
  if (!has_args && parent && parent.type() == "binary_operator" && parent.field("operator").text() == "/") {
    auto right = parent.field("right").text();
    if (!right.empty() && right.size() < 4 &&
        std::all_of(right.begin(), right.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      arity = static_cast<std::uint32_t>(std::stoul(std::string(right)));
    }
  }

  if (target.type() == "identifier") {
    auto name = target.text();
    if (elixir::is_definition(name)) {
      handle_definition(node, name, args);
      return entered;
    }
    if (name == "defdelegate") {
      handle_defdelegate(args);
      return entered;
    }
    if (name == "defmodule" || name == "defprotocol") {
      if (args.empty() || args[0].type() != "alias") {
        problem(node, fmt::format("{} with a computed name", name));
      } else {
        m_not_values.insert(id_of(args[0]));
        if (name == "defprotocol") {
          auto text = std::string(args[0].text());
          auto full = frame().module.empty() ? m_resolver.resolve_alias(text).name : frame().module + "." + text;
          if (auto block = node.first_child_of_type("do_block")) m_frame_at[id_of(block)] = Frame{full, {}, false, false};
          add_module(full, node);
        }
      }
      return entered;
    }
    if (name == "defimpl") {
      handle_defimpl(node, args);
      return entered;
    }
    if (name == "alias") {
      m_resolver.declare_alias(args);
      entered.descend = false;
      return entered;
    }
    if (name == "require" || name == "import" || name == "use") {
      auto module = args.empty() ? Resolved{} : resolve_module(args[0]);
      if (module.kind != Kind::module) {
        problem(node, fmt::format("{} of a module not known statically", name));
        return entered;
      }
      m_not_values.insert(id_of(args[0]));
      // require and import are resolved while compiling, wherever written.
      m_active.push_back(Active{0, m_active.back().context});
      add(name == "use" ? EventKind::use : EventKind::require, node).module = module.name;
      m_active.pop_back();
      if (name == "use") return entered; // its options are evaluated: walk them
      if (name == "require") {
        m_resolver.declare_alias(args);
      } else {
        m_resolver.declare_import(args);
        m_frames.back().imports.push_back(module.name);
      }
      entered.descend = false;
      return entered;
    }
    if (name == "apply") {
      handle_apply(node, args);
      return entered;
    }
    if (name == "quote") {
      m_quoted.push_back(true);
      entered.quote = true;
      return entered;
    }
    if (name == "unquote" || name == "unquote_splicing") {
      m_quoted.push_back(false);
      entered.quote = true;
      // Evaluated when the enclosing quote or definition is expanded.
      const auto& region = m_facts.regions[m_active.back().region];
      if (!region.compile_time && !args.empty()) {
        if (auto arguments = node.first_child_of_type("arguments")) {
          m_region_at[id_of(arguments)] =
            Active{0, fmt::format("unquote in function {}.{}", region.module, region.function)};
        }
      }
      return entered;
    }
    auto& event = add(EventKind::local_call, node);
    event.function = name;
    event.arity = arity;
    for (auto it = m_frames.rbegin(); it != m_frames.rend(); ++it) {
      event.imports.insert(event.imports.end(), it->imports.rbegin(), it->imports.rend());
    }
    return entered;
  }
  if (target.type() == "dot") {
    auto right = target.field("right");
    if (!right) return entered; // fun.(args): the fun's code is judged where it is written
    std::optional<std::string> function;
    if (right.type() == "identifier") {
      function = std::string(right.text());
    } else if (auto text = elixir::literal_string(right)) {
      function = *text;
    }
    auto left = target.field("left");
    if (!function) {
      problem(node, fmt::format("calls a function whose name is computed ({})", clip(node.text(), 60)));
      return entered;
    }
    auto module = resolve_module(left);
    if (module.kind == Kind::module) {
      if (left.type() == "alias") m_not_values.insert(id_of(left));
      if (*function == "apply" && (module.name == "Kernel" || module.name == ":erlang") && args.size() == 3) {
        handle_apply(node, args);
        return entered;
      }
      auto& event = add(EventKind::call, node);
      event.module = module.name;
      event.function = *function;
      event.arity = arity;
    } else if (module.kind == Kind::dynamic) {
      problem(node, fmt::format("calls {} on a module computed at run time ({})", *function, module.via));
    } else if (has_args) {
      problem(node, fmt::format("calls {}.{}/{} on a module not known statically", clip(left.text(), 40),
                                *function, arity));
    }
    // Without parentheses on a value: a map field (state.name).
    return entered;
  }
  if (target.type() == "call") {
    problem(node, fmt::format("calls a function whose name is computed ({})", clip(target.text(), 60)));
  }
  return entered;
}

// def, defp, defmacro, defmacrop, defguard, defguardp: the head stays in the
// enclosing region (default arguments, guards, unquote fragments are
// conservatively taken as run while compiling); the body gets its own region.
void Collector::handle_definition(const Node& node, std::string_view kind, const std::vector<Node>& args)
{
  std::string name;
  if (!args.empty()) {
    auto head = args[0];
    if (head.type() == "binary_operator" && head.field("operator").text() == "when") head = head.field("left");
    if (head.type() == "call") {
      m_heads.insert(id_of(head));
      auto target = head.field("target");
      if (target.type() == "identifier") name = target.text();
    } else if (head.type() == "identifier") {
      name = head.text();
    }
  }
  bool macro = kind.starts_with("defmacro") || kind.starts_with("defguard");
  Region region;
  region.file = m_facts.file;
  region.module = frame().module;
  region.function = name;
  region.macro = macro;
  region.compile_time = macro || frame().impl;
  region.is_public = !kind.ends_with('p');
  auto shown = fmt::format("{}.{}", region.module.empty() ? "(no module)" : region.module,
                           name.empty() ? "(computed name)" : name);
  std::string context = macro         ? fmt::format("macro {}", shown)
                        : frame().impl ? fmt::format("function {} (protocol implementation)", shown)
                                       : fmt::format("function {}", shown);
  auto index = m_facts.regions.size();
  m_facts.regions.push_back(std::move(region));
  Active body{index, context};
  if (auto block = node.first_child_of_type("do_block")) m_region_at[id_of(block)] = body;
  for (const auto& [key, value] : elixir::keyword_pairs(args)) {
    if (key == "do" || key == "else" || key == "rescue" || key == "catch" || key == "after") {
      m_region_at[id_of(value)] = body;
    }
  }
}

void Collector::handle_defdelegate(const std::vector<Node>& args)
{
  if (args.empty()) return;
  auto head = args[0];
  std::string name;
  if (head.type() == "call") {
    m_heads.insert(id_of(head));
    name = head.field("target").text();
  }
  std::string as = name;
  Resolved to;
  for (const auto& [key, value] : elixir::keyword_pairs(args)) {
    if (key == "as") {
      if (auto atom = elixir::literal_atom(value)) as = *atom;
    }
    if (key == "to") {
      to = resolve_module(value);
      m_not_values.insert(id_of(value));
    }
  }
  Region region{m_facts.file, frame().module, name, false, false, true, {}};
  auto context = fmt::format("function {}.{} (defdelegate)", frame().module, name);
  Event event;
  event.line = head.start().line;
  event.context = context;
  event.current_module = frame().module;
  if (to.kind == Kind::module) {
    event.kind = EventKind::call;
    event.module = to.name;
    event.function = as;
  } else {
    event.kind = EventKind::problem;
    event.text = "delegates to a module not known statically";
  }
  region.events.push_back(std::move(event));
  m_facts.regions.push_back(std::move(region));
}

// defimpl Protocol, for: Type defines Protocol.Type; its functions are
// called by protocol dispatch on data, so they count as run while compiling.
void Collector::handle_defimpl(const Node& node, const std::vector<Node>& args)
{
  auto protocol = args.empty() ? Resolved{} : resolve_module(args[0]);
  if (protocol.kind != Kind::module) {
    problem(node, "defimpl of a protocol not known statically");
    return;
  }
  m_not_values.insert(id_of(args[0]));
  add(EventKind::implement, node).module = protocol.name;
  std::vector<std::string> types;
  bool given = false;
  for (const auto& [key, value] : elixir::keyword_pairs(args)) {
    if (key != "for") continue;
    given = true;
    auto items = value.type() == "list" ? children_of(value) : std::vector<Node>{value};
    for (const auto& item : items) {
      auto type = resolve_module(item);
      if (type.kind != Kind::module) {
        problem(node, "defimpl for a type not known statically");
        return;
      }
      m_not_values.insert(id_of(item));
      types.push_back(type.name);
    }
  }
  if (!given && !frame().module.empty()) types.push_back(frame().module);
  if (types.empty()) {
    problem(node, "defimpl without a type");
    return;
  }
  for (const auto& type : types) add_module(fmt::format("{}.{}", protocol.name, type), node);
  if (auto block = node.first_child_of_type("do_block")) {
    m_frame_at[id_of(block)] = Frame{fmt::format("{}.{}", protocol.name, types.front()), {}, true, false};
  }
}

// apply(M, F, A) is a call of M.F when both are written as constants.
void Collector::handle_apply(const Node& node, const std::vector<Node>& args)
{
  if (args.size() != 3) return; // apply(fun, args)
  auto module = resolve_module(args[0]);
  auto function = elixir::literal_atom(args[1]);
  if (module.kind != Kind::module || !function) {
    problem(node, fmt::format("applies {} (a module or function not known statically)", clip(node.text(), 60)));
    return;
  }
  auto& event = add(EventKind::call, node);
  event.module = module.name;
  event.function = *function;
  if (args[2].type() == "list") event.arity = args[2].named_child_count();
}

// @name value: the hooks that run the submission's code, parse transforms,
// derivations; typespecs are not code.
Collector::Entered Collector::handle_attribute(const Node& operand)
{
  Entered entered;
  m_heads.insert(id_of(operand));
  auto name = operand.field("target").text();
  auto args = elixir::call_arguments(operand);
  if (contains(kTypespecs, name) || args.size() != 1) {
    entered.descend = !contains(kTypespecs, name);
    return entered;
  }
  const auto& value = args[0];
  auto value_module = resolve_module(value);
  if (value_module.kind != Kind::unknown) m_resolver.bind_attribute(std::string(name), value_module);
  for (const auto& [attribute, callback] : kHooks) {
    if (name != attribute) continue;
    Resolved module = value_module;
    std::string function = callback;
    if (value.type() == "tuple" && value.named_child_count() == 2) {
      module = resolve_module(value.named_child(0));
      if (auto atom = elixir::literal_atom(value.named_child(1))) function = *atom;
      m_not_values.insert(id_of(value.named_child(0)));
    }
    m_not_values.insert(id_of(value));
    if (module.kind != Kind::module) {
      problem(operand, fmt::format("@{} names code not known statically", name));
      return entered;
    }
    auto& event = add(EventKind::hook, operand);
    event.module = module.name;
    event.function = function;
    event.text = fmt::format("@{}", name);
  }
  if (name == "on_load") {
    auto function = elixir::literal_atom(value);
    if (!function) {
      problem(operand, "@on_load names code not known statically");
    } else {
      auto& event = add(EventKind::hook, operand);
      event.module = frame().module;
      event.function = *function;
      event.text = "@on_load";
    }
  } else if (name == "compile" && value.text().find("parse_transform") != std::string_view::npos) {
    problem(operand, "@compile asks for a parse transform");
  } else if (name == "derive") {
    auto items = value.type() == "list" ? children_of(value) : std::vector<Node>{value};
    for (const auto& item : items) {
      auto target = item.type() == "tuple" && item.named_child_count() > 0 ? item.named_child(0) : item;
      auto module = resolve_module(target);
      if (module.kind != Kind::module) {
        problem(operand, "@derive of a protocol not known statically");
        continue;
      }
      m_not_values.insert(id_of(target));
      add(EventKind::derive, operand).module = module.name;
    }
  } else if ((name == "behaviour" || name == "behavior") && value_module.kind == Kind::module &&
             value_module.name == "Access") {
    m_access_modules.insert(frame().module);
  }
  return entered;
}

} // namespace

FileFacts collect_elixir_facts(const std::string& file, const std::string& source)
{
  auto tree = syntax::Tree::parse(source);
  if (!tree) {
    FileFacts facts;
    facts.file = file;
    Region region{file, "", "", true, false, false, {}};
    Event event;
    event.line = 1;
    event.context = "the file";
    event.text = fmt::format("cannot be parsed ({})", tree.error());
    region.events.push_back(std::move(event));
    facts.regions.push_back(std::move(region));
    return facts;
  }
  Collector collector(file, *tree);
  return collector.run();
}

} // namespace sandbox::scan::confinement
