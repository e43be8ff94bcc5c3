// The walk of an Elixir syntax tree for the confinement analysis
// (scan/confinement_walk.h): the cursor-free traversal with its scopes, the
// events it records and the judging of calls; collect_elixir_facts.

#include "scan/confinement_walk.h"

#include "core/options.h"
#include "scan/findings.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace sandbox::scan::confinement {

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

Collector::Collector(const std::string& file, const syntax::Tree& tree)
    : m_tree(tree), m_rules(core::default_restricted_modules(), {}), m_resolver(m_rules)
{
  m_facts.file = file;
  m_facts.regions.push_back(Region{file, "", "", true, false, false, {}});
  m_frames.push_back(Frame{});
  m_active.push_back(Active{0, ""});
}

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
      if (item.entered.mode) m_modes.pop_back();
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
  if (m_modes.back().type) {
    m_discarded = Event{};
    return m_discarded;
  }
  auto& region = m_facts.regions[m_active.back().region];
  Event event;
  event.kind = kind;
  event.line = at.start().line;
  event.context = context();
  event.current_module = frame().module;
  event.quoted = m_modes.back().quoted;
  region.events.push_back(std::move(event));
  return region.events.back();
}

void Collector::problem(const Node& at, std::string text) { add(EventKind::problem, at).text = std::move(text); }

void Collector::add_module(std::string name, const Node& at)
{
  m_facts.modules.push_back(DefinedModule{std::move(name), at.start().line});
}

std::vector<std::string> Collector::imports_in_scope() const
{
  std::vector<std::string> out;
  for (auto it = m_frames.rbegin(); it != m_frames.rend(); ++it) {
    out.insert(out.end(), it->imports.rbegin(), it->imports.rend());
  }
  return out;
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
      entered.mode = handled.mode;
    } else if (op == "&" && operand.type() == "binary_operator" && operand.field("operator").text() == "/") {
      auto left = operand.field("left");
      if (left.type() == "identifier") {
        auto& event = add(EventKind::local_call, node);
        event.function = left.text();
        auto arity = operand.field("right").text();
        if (!arity.empty() && arity.size() < 4 &&
            std::all_of(arity.begin(), arity.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          event.arity = static_cast<std::uint32_t>(std::stoul(std::string(arity)));
        }
        event.imports = imports_in_scope();
      } else if (left.type() == "call" && left.field("target").type() == "dot" &&
                 !left.first_child_of_type("arguments") &&
                 resolve_module(left.field("target").field("left")).kind == Kind::unknown) {
        // &mod.fun/2: a fun of a module held in a value, called later.
        problem(node, fmt::format("captures a function of a module not known statically ({})",
                                  clip(node.text(), 60)));
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
      event.imports = imports_in_scope();
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
          if (auto block = node.first_child_of_type("do_block")) {
            m_frame_at[id_of(block)] = Frame{full, {}, false, false};
          }
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
      m_modes.push_back(Mode{true, m_modes.back().type});
      entered.mode = true;
      return entered;
    }
    if (name == "unquote" || name == "unquote_splicing") {
      m_modes.push_back(Mode{false, false});
      entered.mode = true;
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
    event.imports = imports_in_scope();
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
