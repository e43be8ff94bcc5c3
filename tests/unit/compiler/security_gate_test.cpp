// The scan before a compile reuses what it learnt about unchanged files; after
// every edit its findings must be exactly those of a fresh scan of the tree.

#include "compiler/security_gate.h"
#include "scan/scanner.h"
#include "util/fs.h"
#include "util/json.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>

namespace sandbox::compiler {

namespace {

class SecurityGate : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create("/tmp", "sandbox-gate-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
    m_root = fs::canonical(m_dir->path());
    fs::create_directories(m_root / "lib");
    fs::create_directories(m_root / "test");
    write("lib/a.ex", "defmodule A do\n  def a, do: System.get_env(\"HOME\")\nend\n");
    write("lib/b.ex", "defmodule B do\n  def b, do: :ok\nend\n");
    write("test/helper.exs", "IO.puts(:ok)\n");
  }

  void write(const std::string& relative, const std::string& text)
  {
    std::ofstream(m_root / relative, std::ios::trunc) << text;
  }

  // The gate's verdict (threats as JSON, or the warnings) next to a fresh,
  // uncached scan's.
  void expect_same_as_a_fresh_scan(bool expect_threat, core::ScanScope scope = core::ScanScope::compiled)
  {
    core::CompileOptions options;
    options.compiler = core::Backend::mix; // the whole tree
    options.scan_scope = scope;
    auto gated = security_gate_before(m_root, {}, options);
    auto fresh = scan::scan_code_security(
      m_root, {options.restricted_modules, options.allowed_operations, kDefaultScanDepth, scope});
    ASSERT_TRUE(fresh) << fresh.error().reason;
    if (expect_threat) {
      ASSERT_FALSE(gated);
      auto* threats = std::get_if<core::SecurityThreatsDetected>(&gated.error());
      ASSERT_NE(threats, nullptr);
      EXPECT_EQ(threats->threats, scan::to_json(fresh->threats));
    } else {
      ASSERT_TRUE(gated);
      EXPECT_TRUE(fresh->threats.empty());
      EXPECT_EQ(scan::to_json(*gated), scan::to_json(fresh->warnings));
    }
  }

  fs::path m_root;

private:
  std::optional<util::TempDir> m_dir;
};

TEST_F(SecurityGate, EditsAreRescannedAndUnchangedFilesKeepTheirFindings)
{
  expect_same_as_a_fresh_scan(false);
  expect_same_as_a_fresh_scan(false); // unchanged: the kept result
  write("lib/b.ex", "defmodule B do\n  def b, do: System.cmd(\"sh\", [\"-c\", \"id\"])\nend\n");
  expect_same_as_a_fresh_scan(true);
  write("lib/b.ex", "defmodule B do\n  def b, do: :ok\nend\n");
  expect_same_as_a_fresh_scan(false);
  write("lib/c.ex", "defmodule C do\n  def c, do: File.rm_rf!(\"/\")\nend\n");
  expect_same_as_a_fresh_scan(true);
  fs::remove(m_root / "lib/c.ex");
  expect_same_as_a_fresh_scan(false);
  // Outside the compile inputs the scanner grades findings differently: a full scan.
  write("test/helper.exs", "System.cmd(\"sh\", [])\n");
  expect_same_as_a_fresh_scan(false);
  write("lib/a.ex", "defmodule A do\n  def a, do: :os.cmd(~c\"id\")\nend\n");
  expect_same_as_a_fresh_scan(true);
}

// The kept result of one scope is never the answer for another, and edits of
// jail-only files and of Mix tasks give what a fresh scan gives in each.
TEST_F(SecurityGate, EachScopeHasItsOwnKeptResult)
{
  using core::ScanScope;
  write("mix.exs", "defmodule P.MixProject do\n  defp sh(_), do: System.cmd(\"make\", [])\nend\n");
  for (int round = 0; round < 2; ++round) {
    expect_same_as_a_fresh_scan(false, ScanScope::compiled);
    expect_same_as_a_fresh_scan(true, ScanScope::all);
  }
  write("mix.exs", "defmodule P.MixProject do\nend\n");
  expect_same_as_a_fresh_scan(false, ScanScope::compiled);
  expect_same_as_a_fresh_scan(false, ScanScope::all);
  fs::create_directories(m_root / "lib/mix/tasks");
  write("lib/mix/tasks/p.gen.ex", "defmodule Mix.Tasks.P.Gen do\n  def run(_), do: File.write!(\"x\", \"\")\nend\n");
  expect_same_as_a_fresh_scan(false, ScanScope::compiled);
  expect_same_as_a_fresh_scan(true, ScanScope::all);
  write("lib/b.ex", "defmodule B do\n  def b, do: Mix.Tasks.P.Gen.run([])\nend\n");
  expect_same_as_a_fresh_scan(true, ScanScope::compiled);
  write("lib/b.ex", "defmodule B do\n  def b, do: :ok\nend\n");
  expect_same_as_a_fresh_scan(false, ScanScope::compiled);
}

// A file whose name is not UTF-8 does not keep the scan from being saved: the
// kept result on disk holds the name, escaped, and gives it back exactly.
TEST_F(SecurityGate, NamesThatAreNotUtf8AreKeptOnDisk)
{
  auto state = util::TempDir::create("/tmp", "sandbox-gate-state-");
  ASSERT_TRUE(state) << state.error();
  const char* previous = std::getenv("SANDBOX_STATE_DIR");
  std::string saved = previous ? previous : "";
  ::setenv("SANDBOX_STATE_DIR", state->path().c_str(), 1);
  const std::string name = "lib/caf\xe9.ex";
  write(name, "defmodule Cafe do\n  def c, do: System.cmd(\"id\", [])\nend\n");
  expect_same_as_a_fresh_scan(true);
  std::vector<fs::path> kept;
  for (const auto& entry : fs::directory_iterator(state->path() / "scan-cache")) {
    kept.push_back(entry.path());
  }
  if (previous) {
    ::setenv("SANDBOX_STATE_DIR", saved.c_str(), 1);
  } else {
    ::unsetenv("SANDBOX_STATE_DIR");
  }
  ASSERT_EQ(kept.size(), 1u);
  auto text = util::read_file(kept.front());
  ASSERT_TRUE(text);
  auto doc = util::unescape_strings(nlohmann::json::parse(text->substr(text->find('\n') + 1)));
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_TRUE((*doc)["facts"].contains(name)) << doc->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace
} // namespace sandbox::compiler
