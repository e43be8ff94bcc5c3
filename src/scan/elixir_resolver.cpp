#include "scan/elixir_resolver.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace sandbox::scan::elixir {

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

bool Resolver::matters(const Resolved& value) const
{
  return value.kind == Kind::dynamic || (value.kind == Kind::module && m_rules.module_matters(value.name));
}

void Resolver::bind(std::vector<std::pair<std::string, Resolved>>& names, std::string name, Resolved value)
{
  if (matters(value)) m_bound.insert(name);
  names.emplace_back(std::move(name), std::move(value));
}


void Resolver::open_scope(const Node& parent)
{
  Scope next;
  next.module = scope().module;
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

bool type_is_call_named(const Node& node, std::string_view name)
{
  if (!node || node.type() != "call") return false;
  auto target = node.field("target");
  return target && target.type() == "identifier" && target.text() == name;
}

// --- resolution -------------------------------------------------------

template <typename Entries>
const Resolved* Resolver::find_in_scopes(Entries Scope::*member, std::string_view name) const
{
  for (auto scope_it = m_scopes.rbegin(); scope_it != m_scopes.rend(); ++scope_it) {
    const auto& entries = (*scope_it).*member;
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      if (it->first == name) return &it->second;
    }
  }
  return nullptr;
}

Resolved Resolver::resolve_alias(std::string_view text) const
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
bool Resolver::is_builder(const Resolved& module, std::string_view function)
{
  return module.kind == Kind::module && builds_module_name(module.name, function);
}

// Folds a builder call whose arguments are constants into the module it names.
std::optional<std::string> Resolver::fold_builder(std::string_view module, const std::vector<Node>& args) const
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

Resolved Resolver::resolve_builder(const Resolved& module, std::string_view function,
                         const std::vector<Node>& args) const
{
  auto what = display_call(module.name, function);
  if (auto folded = fold_builder(module.name, args)) {
    return {Kind::module, *folded, 1, fmt::format("a module built from constants with {}", what)};
  }
  return {Kind::dynamic, "", 0, what};
}

Resolved Resolver::resolve_expr(const Node& node, int guard) const
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

void Resolver::declare_alias(const std::vector<Node>& args)
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

void Resolver::declare_import(const std::vector<Node>& args)
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
      for (auto name : mfa_call_functions(entry.module)) m_bound.emplace(name);
    }
  }
  scope().imports.push_back(std::move(entry));
}

std::optional<Resolved> Resolver::resolve_import(std::string_view name) const
{
  for (auto scope_it = m_scopes.rbegin(); scope_it != m_scopes.rend(); ++scope_it) {
    for (auto it = scope_it->imports.rbegin(); it != scope_it->imports.rend(); ++it) {
      auto listed = [&](const std::vector<std::string>& list) {
        return std::find(list.begin(), list.end(), name) != list.end();
      };
      if (listed(it->except)) continue;
      bool match = it->only_given ? listed(it->only)
                                  : m_rules.has_row(it->module, name) || takes_mfa(it->module, name);
      if (match) {
        return Resolved{Kind::module, it->module, it->hops, fmt::format("import {}", it->module)};
      }
    }
  }
  return std::nullopt;
}

void Resolver::bind_variable(const Node& node)
{
  auto left = node.field("left");
  if (left.type() != "identifier") return;
  auto value = resolve_expr(node.field("right"));
  if (value.kind == Kind::unknown) return;
  bind(scope().variables, std::string(left.text()), std::move(value));
}

void Resolver::bind_attribute(std::string name, Resolved value)
{
  bind(scope().attributes, std::move(name), std::move(value));
}

void Resolver::close_scope()
{
  if (m_scopes.size() > 1) m_scopes.pop_back();
}

} // namespace sandbox::scan::elixir
