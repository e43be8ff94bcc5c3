#pragma once
// The literals mix.lock is written in, read without evaluating anything: maps,
// tuples, lists, keyword lists, strings, atoms, integers, booleans and nil.
// What an entry means is mix_lock's business.

#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::deps::lock_literals {

// A literal as the lock spells it. Keyword lists are lists of 2-tuples whose
// first element is an atom, as Elixir reads them; a map keeps its pairs in
// source order.
struct Value {
  enum class Kind { map, tuple, list, string, atom, integer, boolean, nil };
  Kind kind = Kind::nil;
  int line = 0;
  std::string text; // string and atom contents, integer digits, "true"/"false"
  std::vector<Value> items;
  std::vector<std::pair<Value, Value>> pairs; // map entries
};

// The lock's document: one map (an empty text is an empty map), nested at
// most 64 deep, or where and why it is not one.
std::expected<Value, std::string> read_lock_document(std::string_view text);

} // namespace sandbox::deps::lock_literals
