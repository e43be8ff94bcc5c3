#pragma once
// Which module an Elixir expression names, as far as the source tells: the
// lexical scopes of a file (aliases, imports, variables and attributes that
// hold modules, the enclosing defmodule) and the resolution of expressions in
// module position through them, counting the levels of indirection followed
// (scan_depth). The Elixir scanner walks the tree and asks this.

#include "scan/rules.h"
#include "syntax/elixir_tree.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::scan::elixir {

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

bool is_definition(std::string_view name);
std::string_view strip_keyword(std::string_view key);
std::vector<Node> call_arguments(const Node& call);
// The keyword arguments of a call as (key, value) pairs.
std::vector<std::pair<std::string_view, Node>> keyword_pairs(const std::vector<Node>& args);
// The text of a string or charlist without interpolation; "a" <> "b" folds.
std::optional<std::string> literal_string(const Node& node);
// :cmd, :"cmd" -> cmd
std::optional<std::string> literal_atom(const Node& node);
// A call node whose target is the identifier `name` (defmodule, ...).
bool type_is_call_named(const Node& node, std::string_view name);

class Resolver {
public:
  explicit Resolver(const RuleSet& rules) : m_rules(rules) { m_scopes.emplace_back(); }

  // A do_block or anonymous function opens a scope; `parent` is its call
  // (a defmodule names the scope's module).
  void open_scope(const Node& parent);
  void close_scope();
  // The enclosing defmodule's full name ("" outside one).
  [[nodiscard]] const std::string& current_module() const { return scope().module; }

  [[nodiscard]] Resolved resolve_alias(std::string_view text) const;
  [[nodiscard]] Resolved resolve_expr(const Node& node, int guard = 0) const;
  // The module a bare call `name(...)` reaches through an import.
  [[nodiscard]] std::optional<Resolved> resolve_import(std::string_view name) const;
  // A call that builds an atom or module name from data.
  static bool is_builder(const Resolved& module, std::string_view function);

  void declare_alias(const std::vector<Node>& args); // alias and require
  void declare_import(const std::vector<Node>& args);
  void bind_variable(const Node& node);              // name = expression
  void bind_attribute(std::string name, Resolved value);

  // Names bound to a module that matters (aliases, variables, attributes,
  // __MODULE__) and functions an import of one makes callable bare: code
  // using them can be reported wherever it is (scan/elixir_prefilter.h).
  [[nodiscard]] const WordSet& bound_names() const { return m_bound; }
  // A word that matters wherever it is written, as a bound name does (the
  // functions a module used as a value can reach: :cmd, x.write).
  void mark_bound(std::string_view word) { m_bound.emplace(word); }

private:
  Scope& scope() { return m_scopes.back(); }
  [[nodiscard]] const Scope& scope() const { return m_scopes.back(); }
  [[nodiscard]] bool matters(const Resolved& value) const;
  void bind(std::vector<std::pair<std::string, Resolved>>& names, std::string name, Resolved value);
  template <typename Entries>
  const Resolved* find_in_scopes(Entries Scope::*member, std::string_view name) const;
  [[nodiscard]] std::optional<std::string> fold_builder(std::string_view module, const std::vector<Node>& args) const;
  [[nodiscard]] Resolved resolve_builder(const Resolved& module, std::string_view function,
                                         const std::vector<Node>& args) const;

  const RuleSet& m_rules;
  std::vector<Scope> m_scopes;
  WordSet m_bound;
};

} // namespace sandbox::scan::elixir
