#include "scan/elixir_prefilter.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>

namespace sandbox::scan {

namespace {

constexpr std::array<bool, 256> kWordChars = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) {
    table[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
  }
  return table;
}();

bool word_char(unsigned char c) { return kWordChars[c]; }

bool lower_start(unsigned char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

// Calls fn(begin, end) for every word of source[from, to): a run of word
// characters, with a trailing ? or ! (identifiers may end with one).
template <typename Fn>
void for_each_word(std::string_view source, std::size_t from, std::size_t to, Fn&& fn)
{
  auto at = [&](std::size_t i) { return i < source.size() ? static_cast<unsigned char>(source[i]) : 0; };
  std::size_t i = from;
  while (i < to) {
    if (!word_char(at(i))) {
      ++i;
      continue;
    }
    auto begin = i;
    while (i < to && word_char(at(i))) ++i;
    if (at(i) == '?' || at(i) == '!') ++i;
    fn(begin, i);
  }
}

// The function name right after `module` when source continues with
// `.name` (a call such as System.cmd), else empty.
std::string_view called_function(std::string_view source, std::size_t module_end)
{
  if (module_end + 1 >= source.size() || source[module_end] != '.' ||
      !lower_start(static_cast<unsigned char>(source[module_end + 1]))) {
    return {};
  }
  auto end = module_end + 1;
  while (end < source.size() && word_char(static_cast<unsigned char>(source[end]))) ++end;
  if (end < source.size() && (source[end] == '?' || source[end] == '!')) ++end;
  return source.substr(module_end + 1, end - module_end - 1);
}

// Whether the word source[begin, end) can lead to a finding, and how far
// the occurrence reaches (a call takes its function name along).
std::size_t occurrence_end(std::string_view source, std::size_t begin, std::size_t end, const RuleSet& rules,
                           const WordSet* bound)
{
  auto word = source.substr(begin, end - begin);
  if (bound != nullptr && bound->contains(word)) return end;
  if (!rules.may_be_vocabulary(word)) return 0;
  char before = begin > 0 ? source[begin - 1] : '\0';
  // A dangerous name as an atom (:halt) or a keyword key (halt: 1) calls nothing.
  if (rules.identifier_matters(word) && before != ':' && !(end < source.size() && source[end] == ':' &&
                                                           (end + 1 >= source.size() || source[end + 1] != ':'))) {
    return end;
  }
  if (!rules.module_word(word)) return 0;
  bool elixir = word[0] >= 'A' && word[0] <= 'Z';
  std::string module;
  if (elixir) {
    if (before == '.') return end; // Foo.System: who knows which module
    module = std::string(word);
  } else {
    // An Erlang module is an atom: :os, or quoted, :"os". A bare lower-case
    // word is a variable (file, code) and matters only if bound.
    if (before == '"' || before == '\'') return end;
    if (before != ':') return 0;
    module = ":" + std::string(word);
  }
  auto function = called_function(source, end);
  if (function.empty()) return end; // the module as a value, or System.Foo
  if (!rules.call_matters(module, function)) return 0;
  return end + 1 + function.size();
}

} // namespace

std::vector<ByteRange> vocabulary_in(std::string_view source, const syntax::LexedElixir& lexed,
                                     const RuleSet& rules, const WordSet& bound)
{
  std::vector<ByteRange> out;
  std::array<std::uint64_t, 256> bound_shapes{};
  for (const auto& name : bound) {
    if (!name.empty()) bound_shapes[static_cast<unsigned char>(name.front())] |= 1ull << std::min<std::size_t>(name.size(), 63);
  }
  for_each_word(source, 0, source.size(), [&](std::size_t begin, std::size_t end) {
    auto c = static_cast<unsigned char>(source[begin]);
    if (c >= '0' && c <= '9') return;
    auto length = std::min<std::size_t>(end - begin, 63);
    bool maybe_bound = (bound_shapes[c] >> length & 1u) != 0;
    if (!maybe_bound && !rules.may_be_vocabulary(source.substr(begin, end - begin))) return;
    if (auto reach = occurrence_end(source, begin, end, rules, maybe_bound ? &bound : nullptr)) {
      out.push_back({static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(reach)});
    }
  });
  if (!lexed.quoted_atoms.empty()) {
    out.insert(out.end(), lexed.quoted_atoms.begin(), lexed.quoted_atoms.end());
    std::sort(out.begin(), out.end(), [](const ByteRange& a, const ByteRange& b) { return a.begin < b.begin; });
  }
  return out;
}

std::vector<ByteRange> blocks_to_skip(const syntax::LexedElixir& lexed, const std::vector<ByteRange>& occurrences)
{
  std::vector<ByteRange> out;
  std::uint32_t covered = 0;
  for (const auto& range : lexed.units) {
    if (range.begin < covered) continue;
    auto it = std::lower_bound(occurrences.begin(), occurrences.end(), range.begin,
                               [](const ByteRange& occurrence, std::uint32_t at) { return occurrence.begin < at; });
    bool clean = (it == occurrences.end() || it->begin >= range.end) &&
                 (it == occurrences.begin() || std::prev(it)->end <= range.begin);
    if (!clean) continue;
    out.push_back(range);
    covered = range.end;
  }
  return out;
}

bool parse_agrees_with_lexer(const syntax::Tree& tree, const syntax::LexedElixir& lexed,
                             const std::vector<ByteRange>& occurrences, const std::vector<ByteRange>& skipped)
{
  auto root = tree.root().raw();
  for (const auto& occurrence : occurrences) {
    if (syntax::in_ranges(skipped, occurrence.begin)) continue;
    TSNode node = ts_node_descendant_for_byte_range(root, occurrence.begin, occurrence.end);
    if (ts_node_is_null(node)) return false;
    const char* type = ts_node_type(node);
    bool parser_inert = std::strcmp(type, "comment") == 0 || std::strcmp(type, "quoted_content") == 0 ||
                        std::strcmp(type, "escape_sequence") == 0 || std::strcmp(type, "char") == 0;
    if (parser_inert != syntax::in_ranges(lexed.inert, occurrence.begin)) return false;
  }
  return true;
}

bool bound_name_skipped(std::string_view source, const std::vector<ByteRange>& skipped, const WordSet& bound)
{
  if (bound.empty()) return false;
  bool found = false;
  for (const auto& range : skipped) {
    for_each_word(source, range.begin, range.end, [&](std::size_t begin, std::size_t end) {
      if (bound.contains(source.substr(begin, end - begin))) found = true;
    });
    if (found) return true;
  }
  return false;
}

} // namespace sandbox::scan
