// Cutting inert blocks out of the parse must never change a finding: every
// file is scanned both ways and the results compared, on the labelled
// samples, the corpora, and the corpora with hostile code planted in them.

#include "scan/elixir_prefilter.h"

#include "core/options.h"
#include "scan/elixir_scanner.h"
#include "util/fs.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace sandbox::scan {
namespace {

namespace fs = std::filesystem;

// The shared corpora: $SANDBOX_CORPORA, else ../shared/corpora beside the
// checkout; empty when absent (the tests that need them skip).
fs::path corpora()
{
  fs::path dir = fs::path(SANDBOX_SOURCE_DIR).parent_path() / "shared" / "corpora";
  if (const char* env = std::getenv("SANDBOX_CORPORA"); env != nullptr && *env != '\0') {
    dir = env;
  }
  std::error_code ec;
  return fs::is_directory(dir, ec) ? dir : fs::path();
}

#define SKIP_WITHOUT_CORPORA()                                                                   \
  do {                                                                                           \
    if (corpora().empty()) {                                                                     \
      GTEST_SKIP() << "the corpora are absent: put shared/ beside the checkout or set "          \
                      "SANDBOX_CORPORA";                                                         \
    }                                                                                            \
  } while (false)

struct Source {
  std::string name;
  std::string text;
};

std::vector<Source> elixir_files(const fs::path& root)
{
  std::vector<Source> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    auto ext = it->path().extension();
    if (!it->is_regular_file() || (ext != ".ex" && ext != ".exs")) continue;
    auto text = util::read_file(it->path());
    if (text) out.push_back({fs::relative(it->path(), root).string(), std::move(*text)});
  }
  return out;
}

ScanConfig config(int depth = 3)
{
  return {core::default_restricted_modules(), {}, depth};
}

std::string findings(const Source& source, const ScanConfig& cfg, ElixirParse parse)
{
  Report report(cfg);
  auto scanned = scan_elixir_source(source.name, source.text, report, parse);
  if (!scanned) return "error: " + scanned.error();
  return to_json(report.result()).dump(1);
}

// True when the file takes the cut path (it lexes, something is cut, and
// the cut parse is clean), as scan_elixir_source decides on its first round.
bool takes_cut_path(const std::string& text, const RuleSet& rules)
{
  auto lexed = syntax::lex_elixir(text);
  if (!lexed) return false;
  auto occurrences = vocabulary_in(text, *lexed, rules, {});
  auto skipped = blocks_to_skip(*lexed, occurrences);
  if (skipped.empty()) return false;
  auto tree = syntax::Tree::parse_without(text, skipped);
  return tree && !tree->has_errors() && parse_agrees_with_lexer(*tree, *lexed, occurrences, skipped);
}

void expect_same_findings(const Source& source, const ScanConfig& cfg)
{
  EXPECT_EQ(findings(source, cfg, ElixirParse::skip_inert_blocks), findings(source, cfg, ElixirParse::whole))
    << source.name << " at scan_depth " << cfg.scan_depth << "\n"
    << source.text;
}

TEST(ElixirPrefilter, LabelledSamplesGiveTheSameFindingsEitherWay)
{
  auto samples = elixir_files(fs::path(SANDBOX_TEST_DATA) / "scan");
  ASSERT_GT(samples.size(), 60u);
  for (const auto& sample : samples) {
    for (int depth : {0, 1, 3}) expect_same_findings(sample, config(depth));
    ScanConfig narrow{{"System"}, {"file_access"}, 3};
    expect_same_findings(sample, narrow);
  }
}

TEST(ElixirPrefilter, CorporaGiveTheSameFindingsAndMostOfThemIsCut)
{
  SKIP_WITHOUT_CORPORA();
  auto files = elixir_files(corpora());
  ASSERT_GT(files.size(), 20u) << "the corpora are expected at " << corpora();
  RuleSet rules(core::default_restricted_modules(), {});
  for (const auto& file : files) {
    expect_same_findings(file, config());
    EXPECT_TRUE(takes_cut_path(file.text, rules)) << file.name;
  }
  // decimal.ex: nearly all of it is code that names nothing in the rule table.
  auto decimal = util::read_file(corpora() / "decimal" / "lib" / "decimal.ex");
  ASSERT_TRUE(decimal);
  auto lexed = syntax::lex_elixir(*decimal);
  ASSERT_TRUE(lexed);
  auto skipped = blocks_to_skip(*lexed, vocabulary_in(*decimal, *lexed, rules, {}));
  std::size_t cut = 0;
  for (const auto& range : skipped) cut += range.end - range.begin;
  EXPECT_GT(cut * 10, decimal->size() * 8) << cut << " of " << decimal->size() << " bytes cut";
}

// Hostile code planted in real files: a declaration at module level (which
// may make a name elsewhere matter) and a use inside some block.
struct Plant {
  std::string declaration;
  std::string use;
};

const std::vector<Plant>& plants()
{
  static const std::vector<Plant> list = {
    {"", "System.cmd(\"ls\", [])"},
    {"alias System, as: S", "S.cmd(\"ls\", [])"},
    {"@mod File", "@mod.rm_rf(\"/tmp/x\")"},
    {"import System", "cmd(\"ls\", [])"},
    {"import System, only: [halt: 0]", "halt()"},
    {"", "apply(String.to_atom(\"Elixir.System\"), :cmd, [\"ls\", []])"},
    {"", "m = :os\n    m.cmd('ls')"},
    {"", ":\"Elixir.#{Enum.join([\"Sys\", \"tem\"])}\".cmd(\"ls\", [])"},
    {"", "spawn(fn -> :ok end)"},
    {"", "Code.eval_string(\"1 + 1\")"},
    {"", "f = &:os.cmd/1"},
    {"", "\"1\" |> Code.eval_string()"},
    {"alias Elixir.{System, File}", "File.rm(\"/etc/passwd\")"},
    {"@on_load :init", ""},
    {"", "Module.concat([\"Sys\" <> \"tem\"]).cmd(\"ls\", [])"},
    {"", "x.cmd(\"ls\")"},
    {"m = :erlang", "m.halt()"},
    {"@target Port", "unquote(@target).open({:spawn, \"sh\"}, [])"},
    {"require Logger", "Logger.info(\"System.cmd\")"},
    // Value flow: the module as a value in one place, the call in another.
    {"@backends [File]", "dev.write!(\"x\", \"y\")"},
    {"@target {System, :cmd}", "apply(elem(@target, 0), elem(@target, 1), [\"ls\", []])"},
    {"", "Enum.each([:os], fn m -> m.cmd('ls') end)"},
    {"def runner(r \\\\ System), do: r", "runner().halt()"},
    {"def impl(n), do: String.to_atom(n)", "impl(\"x\").open_port({:spawn, \"sh\"}, [])"},
    // Functions that take M, F, A and call them elsewhere or later.
    {"", "spawn(System, :cmd, [\"ls\", []])"},
    {"", "Task.Supervisor.start_child(Sup, :os, :cmd, ['ls'])"},
    {"", ":timer.apply_after(10, :os, :cmd, ['ls'])"},
    {"alias :proc_lib, as: PL", "PL.spawn(:erlang, :halt, [])"},
    {"import Task.Supervisor", "start_child(sup, File, :rm_rf!, [\"/tmp/x\"])"},
    {"@runner System", "Process.spawn(@runner, :cmd, [\"ls\", []], [])"},
    {"@mods [System]", "Enum.each(@mods, fn m -> Task.start(m, :halt, []) end)"},
    {"", "Agent.update(agent, :os, :cmd, [])"},
  };
  return list;
}

// Starts of the lines after a line ending in `do`, and the line after the
// first `defmodule ... do`.
std::vector<std::size_t> block_starts(const std::string& text)
{
  std::vector<std::size_t> out;
  for (auto at = text.find(" do\n"); at != std::string::npos; at = text.find(" do\n", at + 1)) {
    out.push_back(at + 4);
  }
  return out;
}

TEST(ElixirPrefilter, PlantedHostileCodeIsFoundTheSameWayEitherWay)
{
  SKIP_WITHOUT_CORPORA();
  auto files = elixir_files(corpora());
  ASSERT_FALSE(files.empty());
  RuleSet rules(core::default_restricted_modules(), {});
  std::mt19937 random(20261126);
  int cases = 0;
  int cut_path = 0;
  for (const auto& file : files) {
    auto starts = block_starts(file.text);
    auto module = file.text.find("defmodule ");
    if (starts.size() < 2 || module == std::string::npos) continue;
    auto module_body = file.text.find(" do\n", module);
    if (module_body == std::string::npos) continue;
    module_body += 4;
    for (const auto& plant : plants()) {
      for (int trial = 0; trial < 2; ++trial) {
        auto where = starts[std::uniform_int_distribution<std::size_t>(0, starts.size() - 1)(random)];
        if (where <= module_body) continue;
        std::string text = file.text.substr(0, module_body);
        if (!plant.declaration.empty()) text += "  " + plant.declaration + "\n";
        text += file.text.substr(module_body, where - module_body);
        if (!plant.use.empty()) text += "    " + plant.use + "\n";
        text += file.text.substr(where);
        expect_same_findings({file.name, text}, config());
        ++cases;
        cut_path += takes_cut_path(text, rules) ? 1 : 0;
      }
    }
  }
  EXPECT_GT(cases, 100);
  // The comparison means something only if the cut path is taken.
  EXPECT_GT(cut_path * 2, cases) << cut_path << " of " << cases << " planted files took the cut path";
}

TEST(ElixirPrefilter, ANameBoundToADangerousModuleKeepsTheBlocksThatUseIt)
{
  // `runner` is bound at module level; the function using it names nothing
  // in the rule table, so only the bound name keeps it in the parse.
  Source source{"lib/a.ex", "defmodule A do\n  @runner System\n  def go(args) do\n    @runner.cmd(\"sh\", args)\n"
                            "  end\n  def other(x) do\n    x + 1\n  end\nend\n"};
  Report report(config());
  ASSERT_TRUE(scan_elixir_source(source.name, source.text, report));
  ASSERT_EQ(report.result().threats.size(), 1u);
  EXPECT_EQ(report.result().threats[0].line, 4u);
  expect_same_findings(source, config());
}

} // namespace
} // namespace sandbox::scan
