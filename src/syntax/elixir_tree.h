#pragma once
// Elixir source as a syntax tree, parsed with tree-sitter's Elixir grammar.
// The scanner and the incremental planner read code through this, never
// through regular expressions: comments, strings and docs are their own nodes.

#include "syntax/elixir_lexer.h"

#include <tree_sitter/api.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::syntax {

// 1-based line; 1-based column counted in bytes.
struct Position {
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

// A node of a Tree. It refers into the tree, so it must not outlive it.
class Node {
public:
  Node() = default;
  Node(TSNode node, const std::string* source) : m_node(node), m_source(source) {}

  [[nodiscard]] bool null() const { return m_source == nullptr || ts_node_is_null(m_node); }
  explicit operator bool() const { return !null(); }

  [[nodiscard]] std::string_view type() const;
  [[nodiscard]] bool named() const { return ts_node_is_named(m_node); }
  [[nodiscard]] bool is_error() const;  // an ERROR or MISSING node
  [[nodiscard]] bool has_error() const { return ts_node_has_error(m_node); }
  [[nodiscard]] std::string_view text() const;
  [[nodiscard]] Position start() const;
  [[nodiscard]] Position end() const;
  [[nodiscard]] std::uint32_t start_byte() const { return ts_node_start_byte(m_node); }
  [[nodiscard]] std::uint32_t end_byte() const { return ts_node_end_byte(m_node); }

  // The child in the grammar field `name` ("target", "left", "right", "operator", ...).
  [[nodiscard]] Node field(std::string_view name) const;
  [[nodiscard]] Node parent() const;
  [[nodiscard]] std::uint32_t child_count() const { return ts_node_child_count(m_node); }
  [[nodiscard]] Node child(std::uint32_t index) const;
  [[nodiscard]] std::uint32_t named_child_count() const { return ts_node_named_child_count(m_node); }
  [[nodiscard]] Node named_child(std::uint32_t index) const;
  [[nodiscard]] std::vector<Node> named_children() const;
  // The first named child of type `type`, or a null node.
  [[nodiscard]] Node first_child_of_type(std::string_view type) const;

  // The node as an S-expression of node types, for diagnostics and tests.
  [[nodiscard]] std::string sexp() const;
  [[nodiscard]] TSNode raw() const { return m_node; }
  // Another node of the same tree.
  [[nodiscard]] Node same_tree(TSNode other) const { return {other, m_source}; }
  friend bool operator==(const Node& a, const Node& b) { return ts_node_eq(a.m_node, b.m_node); }

private:
  TSNode m_node{};
  const std::string* m_source = nullptr;
};

class Tree {
public:
  static constexpr std::chrono::microseconds kDefaultTimeout{std::chrono::seconds(5)};

  // Parses `source`. A syntax error still gives a tree (with ERROR nodes);
  // only a parse that runs past `timeout` or an impossible input fails.
  static std::expected<Tree, std::string> parse(std::string source,
                                                std::chrono::microseconds timeout = kDefaultTimeout);

  // Parses `source` with the `excluded` byte ranges (sorted, disjoint) left
  // out: the parser reads the rest as if those bytes were not there, and
  // positions and text still refer to `source`.
  static std::expected<Tree, std::string> parse_without(std::string source,
                                                        const std::vector<ByteRange>& excluded,
                                                        std::chrono::microseconds timeout = kDefaultTimeout);

  [[nodiscard]] Node root() const;
  [[nodiscard]] const std::string& source() const { return *m_source; }
  [[nodiscard]] bool has_errors() const { return root().has_error(); }
  // Line `line` (1-based) without its line ending; empty past the end.
  [[nodiscard]] std::string_view line(std::uint32_t line) const;

private:
  struct TreeDeleter {
    void operator()(TSTree* tree) const { ts_tree_delete(tree); }
  };
  Tree(std::unique_ptr<std::string> source, TSTree* tree, std::vector<std::uint32_t> line_starts);

  std::unique_ptr<std::string> m_source; // stable address for the nodes
  std::unique_ptr<TSTree, TreeDeleter> m_tree;
  std::vector<std::uint32_t> m_line_starts;
};

// Pre-order walk without recursion, so deeply nested input cannot exhaust the
// stack. `visit` returns false to skip the node's children.
void walk(const Node& root, const std::function<bool(const Node&)>& visit);

} // namespace sandbox::syntax
