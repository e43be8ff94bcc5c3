// The Elixir scan's entry point: it parses the file with the blocks that
// cannot produce a finding cut out (scan/elixir_prefilter.h), or whole when
// the cut parse cannot be trusted, and walks the tree (scan/elixir_walker.h).

#include "scan/elixir_scanner.h"

#include "scan/elixir_prefilter.h"
#include "scan/elixir_walker.h"
#include "syntax/elixir_lexer.h"
#include "syntax/elixir_tree.h"

#include <optional>
#include <utility>
#include <vector>

namespace sandbox::scan {

namespace {

std::expected<std::vector<Finding>, std::string> scan_whole(std::string_view file, std::string source,
                                                            const Report& report)
{
  auto tree = syntax::Tree::parse(std::move(source));
  if (!tree) return std::unexpected(tree.error());
  elixir::Walker walker(file, *tree, report);
  walker.run();
  return std::move(walker.findings());
}

// The scan with inert blocks cut out of the parse (scan/elixir_prefilter.h),
// or nullopt when the file needs a whole parse.
std::optional<std::vector<Finding>> scan_skipping(std::string_view file, const std::string& source,
                                                  const Report& report)
{
  constexpr int kRounds = 4;
  auto lexed = syntax::lex_elixir(source);
  if (!lexed) return std::nullopt;
  WordSet bound;
  for (int round = 0; round < kRounds; ++round) {
    auto occurrences = vocabulary_in(source, *lexed, report.rules(), bound);
    // Nothing of the vocabulary anywhere: every statement would be cut.
    if (occurrences.empty()) return std::vector<Finding>{};
    auto skipped = blocks_to_skip(*lexed, occurrences);
    if (skipped.empty()) return std::nullopt;
    auto tree = syntax::Tree::parse_without(source, skipped);
    if (!tree || tree->has_errors() || !parse_agrees_with_lexer(*tree, *lexed, occurrences, skipped)) {
      return std::nullopt;
    }
    elixir::Walker walker(file, *tree, report);
    walker.run();
    bool grew = false;
    for (const auto& name : walker.bound_names()) grew = bound.insert(name).second || grew;
    if (!grew || !bound_name_skipped(source, skipped, bound)) return std::move(walker.findings());
  }
  return std::nullopt;
}

} // namespace

std::expected<void, std::string> scan_elixir_source(std::string_view file, std::string source, Report& report,
                                                    ElixirParse parse)
{
  std::optional<std::vector<Finding>> findings;
  if (parse == ElixirParse::skip_inert_blocks) findings = scan_skipping(file, source, report);
  if (!findings) {
    auto whole = scan_whole(file, std::move(source), report);
    if (!whole) return std::unexpected(whole.error());
    findings = std::move(*whole);
  }
  for (auto& finding : *findings) report.add(std::move(finding));
  return {};
}

} // namespace sandbox::scan
