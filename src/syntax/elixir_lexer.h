#pragma once
// A lexer for Elixir source that finds what a parse needs before it parses:
// which bytes are not code (comments, string, charlist and sigil contents,
// character literals) and where every `do ... end` block begins and ends. It
// is two orders of magnitude faster than a tree-sitter parse, and the scanner
// uses it to decide which blocks it may leave out of the parse (see
// scan/elixir_prefilter.h). It never decides what code means: anything it
// does not recognise is an error, and the caller then parses the whole file.

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::syntax {

// A half-open byte range [begin, end).
struct ByteRange {
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

struct LexedElixir {
  std::vector<ByteRange> inert;        // not code, in source order
  std::vector<ByteRange> quoted_atoms; // :"..." and :'...' (may build a module name)
  // Ranges that can be cut out of a parse without changing how the code
  // around them parses, outer before inner:
  //  - a `do ... end` block (from `do` through `end`) not inside an
  //    interpolation, when what follows its `end` starts a new expression,
  //    closes a bracket or an enclosing block (not `end |> f()`, `end.x`);
  //  - a statement of a block body or of the file: from its first token to
  //    the next statement's (or the block's `end`), between newlines that do not continue it (a line ending
  //    in an operator or comma, a next line starting with one, `when`, `do:`)
  //    or semicolons. Bodies made of `pattern -> body` clauses are not split.
  std::vector<ByteRange> units;
};

// Deeper string interpolation than this is an error (the caller parses instead).
constexpr int kMaxInterpolationDepth = 32;

std::expected<LexedElixir, std::string> lex_elixir(std::string_view source);

// True when `offset` lies in one of `inert` (sorted, disjoint).
bool in_ranges(const std::vector<ByteRange>& ranges, std::uint32_t offset);

} // namespace sandbox::syntax
