#pragma once
// Which parts of an Elixir file the scanner can leave out of the parse.
//
// Parsing is nearly all of a scan's cost, and most code of a real library
// names nothing the rule table knows. A finding needs some word of the rule
// table's vocabulary in the code it comes from (RuleSet::module_matters and
// friends) or a name the file binds to such a module (an alias, a variable,
// an attribute, the names an import makes callable bare, the functions a
// module used as a value can reach: the scanner reports those as it goes).
// So a `do ... end` block or a statement whose bytes
// contain none of these words, not even in a comment or a string, cannot
// produce a finding, and what it binds cannot matter: it is cut out of the
// parse, and the parser reads the rest as if it were not there. The word search reads the
// raw bytes, so it does not depend on the lexer being right; the lexer only
// says where blocks begin and end, and where the rest of the file is not
// code. Every way this could go wrong sends the file to a whole parse:
//  - the lexer does not understand the file;
//  - the partial parse has a syntax error;
//  - the parser and the lexer disagree on whether a word of the vocabulary
//    that is parsed lies in code or in a string or comment;
//  - a name the file binds to a module that matters appears in a cut block
//    (the scan is then repeated with that block kept, a few times at most).
// Syntax errors inside a cut block are left to the compiler.

#include "scan/rules.h"
#include "syntax/elixir_lexer.h"
#include "syntax/elixir_tree.h"

#include <string_view>
#include <vector>

namespace sandbox::scan {

using syntax::ByteRange;

// Where the vocabulary occurs in `source`: words of the rule table, names in
// `bound` (names the file binds to modules that matter), quoted atoms.
// Sorted by position.
std::vector<ByteRange> vocabulary_in(std::string_view source, const syntax::LexedElixir& lexed,
                                     const RuleSet& rules, const WordSet& bound);

// The outermost units (blocks, statements) that contain no occurrence: what to cut.
std::vector<ByteRange> blocks_to_skip(const syntax::LexedElixir& lexed, const std::vector<ByteRange>& occurrences);

// True when the parser (of the file with `skipped` cut out) and the lexer
// agree, for every occurrence outside the cut, on whether it is code.
bool parse_agrees_with_lexer(const syntax::Tree& tree, const syntax::LexedElixir& lexed,
                             const std::vector<ByteRange>& occurrences, const std::vector<ByteRange>& skipped);

// True when a word in `bound` occurs inside a skipped block.
bool bound_name_skipped(std::string_view source, const std::vector<ByteRange>& skipped, const WordSet& bound);

} // namespace sandbox::scan
