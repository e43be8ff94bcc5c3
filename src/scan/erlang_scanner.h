#pragma once
// The Erlang source scanner (.erl, .hrl). No Erlang grammar is available to
// tree-sitter here, so this is a tokenizer of its own (comments, strings,
// quoted atoms, character literals, based numbers, macros) and a reader of the
// token stream for remote calls (os:cmd(...)), funs (fun os:cmd/1), apply,
// imports, auto-imported BIFs (open_port, halt, load_nif) and -on_load.

#include "scan/findings.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::scan {

struct ErlangToken {
  enum class Kind { atom, var, string, character, number, macro, punct, end_of_form };
  Kind kind = Kind::punct;
  std::string_view text;  // as written
  std::string value;      // atom or string content without quotes (escapes kept)
  std::uint32_t line = 1;
  std::uint32_t column = 1;
};

// Never fails: bytes it does not understand become one-byte punctuation.
std::vector<ErlangToken> tokenize_erlang(std::string_view source);

void scan_erlang_source(std::string_view file, std::string_view source, Report& report);

} // namespace sandbox::scan
