#include "syntax/elixir_tree.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

extern "C" const TSLanguage* tree_sitter_elixir(void);

namespace sandbox::syntax {

namespace {

struct ParserDeleter {
  void operator()(TSParser* parser) const { ts_parser_delete(parser); }
};

// One parser per thread: creating one per file costs more than parsing a small file.
TSParser* thread_parser()
{
  thread_local std::unique_ptr<TSParser, ParserDeleter> parser = [] {
    std::unique_ptr<TSParser, ParserDeleter> made(ts_parser_new());
    if (made && !ts_parser_set_language(made.get(), tree_sitter_elixir())) {
      made.reset();
    }
    return made;
  }();
  return parser.get();
}

Position to_position(TSPoint point)
{
  return {point.row + 1, point.column + 1};
}

} // namespace

std::string_view Node::type() const
{
  if (null()) return {};
  return ts_node_type(m_node);
}

bool Node::is_error() const
{
  return !null() && (ts_node_is_missing(m_node) || std::strcmp(ts_node_type(m_node), "ERROR") == 0);
}

std::string_view Node::text() const
{
  if (null()) return {};
  auto begin = std::min<std::size_t>(start_byte(), m_source->size());
  auto end = std::min<std::size_t>(end_byte(), m_source->size());
  return std::string_view(*m_source).substr(begin, end > begin ? end - begin : 0);
}

Position Node::start() const
{
  return null() ? Position{} : to_position(ts_node_start_point(m_node));
}

Position Node::end() const
{
  return null() ? Position{} : to_position(ts_node_end_point(m_node));
}

std::string Node::sexp() const
{
  if (null()) return {};
  char* raw = ts_node_string(m_node);
  std::string text = raw != nullptr ? raw : "";
  std::free(raw); // NOLINT: allocated by tree-sitter with malloc
  return text;
}

Node Node::field(std::string_view name) const
{
  if (null()) return {};
  return {ts_node_child_by_field_name(m_node, name.data(), static_cast<std::uint32_t>(name.size())), m_source};
}

Node Node::parent() const
{
  if (null()) return {};
  return {ts_node_parent(m_node), m_source};
}

Node Node::child(std::uint32_t index) const
{
  if (null()) return {};
  return {ts_node_child(m_node, index), m_source};
}

Node Node::named_child(std::uint32_t index) const
{
  if (null()) return {};
  return {ts_node_named_child(m_node, index), m_source};
}

std::vector<Node> Node::named_children() const
{
  std::vector<Node> children;
  auto count = named_child_count();
  children.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    children.push_back(named_child(i));
  }
  return children;
}

Node Node::first_child_of_type(std::string_view wanted) const
{
  auto count = named_child_count();
  for (std::uint32_t i = 0; i < count; ++i) {
    auto candidate = named_child(i);
    if (candidate.type() == wanted) return candidate;
  }
  return {};
}

namespace {

std::vector<std::uint32_t> line_starts_of(const std::string& source)
{
  std::vector<std::uint32_t> starts{0};
  for (std::size_t i = source.find('\n'); i != std::string::npos; i = source.find('\n', i + 1)) {
    starts.push_back(static_cast<std::uint32_t>(i + 1));
  }
  return starts;
}

TSPoint point_at(const std::vector<std::uint32_t>& line_starts, std::uint32_t byte)
{
  auto it = std::upper_bound(line_starts.begin(), line_starts.end(), byte);
  auto row = static_cast<std::uint32_t>(it - line_starts.begin() - 1);
  return {row, byte - line_starts[row]};
}

} // namespace

Tree::Tree(std::unique_ptr<std::string> source, TSTree* tree, std::vector<std::uint32_t> line_starts)
  : m_source(std::move(source)), m_tree(tree), m_line_starts(std::move(line_starts))
{
}

std::expected<Tree, std::string> Tree::parse(std::string source, std::chrono::microseconds timeout)
{
  return parse_without(std::move(source), {}, timeout);
}

std::expected<Tree, std::string> Tree::parse_without(std::string source, const std::vector<ByteRange>& excluded,
                                                     std::chrono::microseconds timeout)
{
  if (source.size() > UINT32_MAX / 2) {
    return std::unexpected("source is too large to parse");
  }
  auto* parser = thread_parser();
  if (parser == nullptr) {
    return std::unexpected("the tree-sitter Elixir grammar does not match the tree-sitter library");
  }
  auto owned = std::make_unique<std::string>(std::move(source));
  auto line_starts = line_starts_of(*owned);
  auto size = static_cast<std::uint32_t>(owned->size());
  std::vector<TSRange> included;
  if (!excluded.empty()) {
    std::uint32_t from = 0;
    auto include = [&](std::uint32_t begin, std::uint32_t end) {
      if (end > begin) {
        included.push_back({point_at(line_starts, begin), point_at(line_starts, end), begin, end});
      }
    };
    for (const auto& range : excluded) {
      if (range.begin < from || range.end > size || range.end < range.begin) {
        return std::unexpected("excluded ranges must be sorted, disjoint and inside the source");
      }
      include(from, range.begin);
      from = range.end;
    }
    include(from, size);
    if (included.empty()) included.push_back({point_at(line_starts, 0), point_at(line_starts, 0), 0, 0});
  }
  if (!ts_parser_set_included_ranges(parser, included.data(), static_cast<std::uint32_t>(included.size()))) {
    return std::unexpected("tree-sitter rejected the included ranges");
  }
  ts_parser_set_timeout_micros(parser, static_cast<std::uint64_t>(timeout.count()));
  TSTree* tree = ts_parser_parse_string(parser, nullptr, owned->data(), size);
  if (!included.empty()) ts_parser_set_included_ranges(parser, nullptr, 0);
  if (tree == nullptr) {
    ts_parser_reset(parser);
    return std::unexpected("parsing took longer than the parse deadline");
  }
  return Tree(std::move(owned), tree, std::move(line_starts));
}

Node Tree::root() const
{
  return {ts_tree_root_node(m_tree.get()), m_source.get()};
}

std::string_view Tree::line(std::uint32_t line) const
{
  if (line == 0 || line > m_line_starts.size()) return {};
  auto begin = m_line_starts[line - 1];
  auto end = line < m_line_starts.size() ? m_line_starts[line] - 1 : m_source->size();
  std::string_view text = std::string_view(*m_source).substr(begin, end - begin);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

void walk(const Node& root, const std::function<bool(const Node&)>& visit)
{
  if (root.null()) return;
  TSTreeCursor cursor = ts_tree_cursor_new(root.raw());
  for (;;) {
    Node node = root.same_tree(ts_tree_cursor_current_node(&cursor));
    if (visit(node) && ts_tree_cursor_goto_first_child(&cursor)) {
      continue;
    }
    // Up until a next sibling exists; back at the root means done.
    bool advanced = false;
    while (!advanced) {
      if (ts_node_eq(ts_tree_cursor_current_node(&cursor), root.raw())) {
        ts_tree_cursor_delete(&cursor);
        return;
      }
      if (ts_tree_cursor_goto_next_sibling(&cursor)) {
        advanced = true;
      } else if (!ts_tree_cursor_goto_parent(&cursor)) {
        ts_tree_cursor_delete(&cursor);
        return;
      }
    }
  }
}

} // namespace sandbox::syntax
