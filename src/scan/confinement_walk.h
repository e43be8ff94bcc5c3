#pragma once
// The walk behind collect_elixir_facts (scan/confinement_facts.h), internal
// to the scan layer: one pass over the syntax tree, with the scanner's
// resolver (scan/elixir_resolver.h) keeping aliases, variables and attributes
// that hold modules, cuts the file into regions and records in each the
// calls and other events the verdict follows.
//
// Its definitions are split by concern: the walk, scopes and calls
// (confinement_walk.cpp); definitions, attributes, defimpl and apply
// (confinement_walk_definitions.cpp).

#include "scan/confinement_facts.h"
#include "scan/elixir_resolver.h"
#include "scan/rules.h"
#include "syntax/elixir_tree.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::scan::confinement {

using elixir::Kind;
using elixir::Resolved;
using syntax::Node;

using NodeId = const void*;
inline NodeId id_of(const Node& node) { return node.raw().id; }

// The named children in order, read with a cursor (indexing children is
// linear in tree-sitter).
std::vector<Node> children_of(const Node& node);

inline constexpr std::array kTypespecs = {"spec", "type", "typep", "opaque", "callback", "macrocallback"};
inline constexpr std::array kHooks = {std::pair{"before_compile", "__before_compile__"},
                                      std::pair{"after_compile", "__after_compile__"},
                                      std::pair{"after_verify", "__after_verify__"},
                                      std::pair{"on_definition", "__on_definition__"}};
inline constexpr std::array kStandardSigils = {"s", "S", "c", "C", "w", "W", "r", "R", "D", "T", "N", "U"};
inline constexpr std::array kAccessCallbacks = {"fetch", "get_and_update", "pop"};

template <typename Array>
bool contains(const Array& array, std::string_view value)
{
  return std::find(array.begin(), array.end(), value) != array.end();
}

// One file's walk: run() once, then the facts are moved out.
class Collector {
public:
  Collector(const std::string& file, const syntax::Tree& tree);

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
    bool mode = false; // pushed onto m_modes
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
  // The modules imported where the walk is, innermost first.
  [[nodiscard]] std::vector<std::string> imports_in_scope() const;
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
  // Where the walk is: inside a quote (code as data until injected), inside
  // a typespec (types, not calls); an unquote is code again. Innermost last.
  struct Mode {
    bool quoted = false;
    bool type = false;
  };
  std::vector<Mode> m_modes{Mode{}};
  Event m_discarded; // what add() hands out inside a typespec
  bool m_parse_error = false;
};

} // namespace sandbox::scan::confinement
