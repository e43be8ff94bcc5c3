// Definitions, attributes, defimpl and apply for the confinement walk
// (scan/confinement_walk.h): where a function's region starts, which hooks
// run the submission's code, which modules a protocol implementation defines.

#include "scan/confinement_walk.h"

#include "scan/findings.h"

#include <fmt/format.h>

#include <utility>

namespace sandbox::scan::confinement {

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
// derivations; typespecs are types except for what they unquote.
Collector::Entered Collector::handle_attribute(const Node& operand)
{
  Entered entered;
  m_heads.insert(id_of(operand));
  auto name = operand.field("target").text();
  auto args = elixir::call_arguments(operand);
  if (contains(kTypespecs, name)) {
    // Types, not calls; only what is unquoted in them runs.
    m_modes.push_back(Mode{m_modes.back().quoted, true});
    entered.mode = true;
    return entered;
  }
  if (args.size() != 1) return entered;
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

} // namespace sandbox::scan::confinement
