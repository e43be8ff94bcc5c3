#include "scan/scanner.h"

#include "core/options.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace sandbox::scan {
namespace {

namespace fs = std::filesystem;

class TempTree : public ::testing::Test {
protected:
  void SetUp() override
  {
    char pattern[] = "/tmp/scan_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root = pattern;
  }
  void TearDown() override
  {
    std::error_code ec;
    fs::permissions(root, fs::perms::owner_all, ec);
    fs::remove_all(root, ec);
  }
  void write(const std::string& relative, const std::string& content)
  {
    fs::create_directories((root / relative).parent_path());
    std::ofstream(root / relative, std::ios::binary) << content;
  }
  static ScanConfig defaults() { return {core::default_restricted_modules(), {}, 3}; }
  fs::path root;
};

TEST_F(TempTree, FindsThreatsInLibAndReportsPositionAndContext)
{
  write("lib/a.ex", "defmodule A do\n  # System.cmd in a comment\n  def f, do: :os.cmd('id')\nend\n");
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result) << result.error().reason;
  ASSERT_EQ(result->threats.size(), 1u);
  const auto& t = result->threats[0];
  EXPECT_EQ(t.file, "lib/a.ex");
  EXPECT_EQ(t.line, 3u);
  EXPECT_EQ(t.column, 14u);
  EXPECT_EQ(t.operation, "system_command");
  EXPECT_EQ(t.severity, Severity::critical);
  EXPECT_EQ(t.type, "dangerous_operation");
  EXPECT_EQ(t.matched_text, ":os.cmd('id')");
  EXPECT_NE(t.surrounding_code.find("def f, do: :os.cmd('id')"), std::string::npos);
  auto json = to_json(t);
  EXPECT_EQ(json["context"]["line_number"], 3);
  EXPECT_EQ(json["severity"], "critical");
  EXPECT_EQ(json["module"], ":os");
  EXPECT_EQ(json["function"], "cmd");
  EXPECT_EQ(json["arity"], 1);
}

TEST_F(TempTree, FilesNoCompileRunsGiveWarningsNotThreats)
{
  write("test/a_test.exs", "Code.compile_file(\"x.exs\")\n");
  write("bench.exs", "System.cmd(\"ls\", [])\n");
  write("mix.exs", "System.cmd(\"ls\", [])\n");
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->threats.empty());
  ASSERT_EQ(result->warnings.size(), 3u);
  for (const auto& warning : result->warnings) {
    EXPECT_EQ(warning.runs_in, RunsIn::jail) << warning.file;
    EXPECT_NE(warning.message.find("(was critical; reported as a warning: this code runs only inside the jail)"),
              std::string::npos)
      << warning.message;
  }
  auto all = defaults();
  all.scope = core::ScanScope::all;
  result = scan_code_security(root, all);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->threats.size(), 3u);
  EXPECT_TRUE(result->warnings.empty());
}

TEST(FileRunsIn, WhatTheBackendsCompileRunsInAHostTheRestInTheJail)
{
  for (const char* host : {"lib/a.ex", "lib/a/b/c.ex", "src/a.erl", "src/x/a.erl", "a.erl", "include/a.hrl",
                           "src/a.hrl", "apps/web/lib/a.ex", "deps/dep/lib/a.ex", "deps/dep/src/a.erl",
                           "apps/web/deps/dep/lib/a.ex"}) {
    EXPECT_EQ(file_runs_in(host), RunsIn::host) << host;
  }
  for (const char* jail : {"mix.exs", "config/config.exs", "config/runtime.exs", "test/a_test.exs",
                           "test/support/case.ex", "priv/script.exs", "priv/templates/a.ex", "bench.exs",
                           "a.ex", "lib/a.exs", "lib/tasks.erl", "src/a.ex", "apps/web/mix.exs",
                           "apps/web/test/a_test.exs", "deps/dep/mix.exs", "deps/dep/test/a.ex",
                           "apps/lib/a.ex", "deps/a.ex"}) {
    EXPECT_EQ(file_runs_in(jail), RunsIn::jail) << jail;
  }
}

TEST_F(TempTree, NonUtf8AndBinaryGarbageAreScannedWithoutCrashing)
{
  std::string garbage = "defmodule A do\n  def f, do: \"\xff\xfe\xc3\x28\"\n  \x80\x81 System.cmd(\"x\", [])\nend\n";
  garbage += std::string("\0\0\x01\x02", 4);
  write("lib/bad.ex", garbage);
  write("src/bad.erl", "-module(bad).\nf() -> \xff\xfe os:cmd(\"id\").\n'unterminated");
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result) << result.error().reason;
  bool erlang_found = false;
  for (const auto& t : result->threats) erlang_found |= t.file == "src/bad.erl";
  EXPECT_TRUE(erlang_found);
}

TEST_F(TempTree, SyntaxErrorsGiveAWarningAndStillFindCalls)
{
  write("lib/broken.ex", "defmodule A do\n  def f(, do\n  def g, do: System.cmd(\"x\", [])\n");
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result);
  bool parse_warning = false;
  for (const auto& w : result->warnings) parse_warning |= w.operation == "parse";
  EXPECT_TRUE(parse_warning);
  EXPECT_FALSE(result->threats.empty());
}

TEST_F(TempTree, AFileOverTheLimitFailsTheScan)
{
  write("lib/huge.ex", std::string(2 << 20, 'a'));
  ScanLimits limits;
  limits.max_file_bytes = 1 << 20;
  auto result = scan_code_security(root, defaults(), {}, limits);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().reason.find("lib/huge.ex"), std::string::npos);
}

TEST_F(TempTree, AHugeFileWithinTheLimitIsScanned)
{
  std::string big = "defmodule A do\n";
  for (int i = 0; i < 60000; ++i) big += "  def f" + std::to_string(i) + "(x), do: x + 1\n";
  big += "  def z, do: :os.cmd('id')\nend\n";
  write("lib/big.ex", big);
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result) << result.error().reason;
  ASSERT_EQ(result->threats.size(), 1u);
  EXPECT_EQ(result->threats[0].line, 60002u);
}

TEST_F(TempTree, AnUnreadableFileFailsTheScan)
{
  if (::geteuid() == 0) {
    // root reads anything; a directory entry that is not a file stands in.
    write("lib/ok.ex", "defmodule A do end\n");
    fs::create_symlink("/etc/shadow", root / "lib" / "link.ex");
    auto result = scan_code_security(root, defaults());
    ASSERT_TRUE(result); // links are never followed, so never read
    EXPECT_TRUE(result->threats.empty());
    GTEST_SKIP() << "running as root: permissions cannot make a file unreadable";
  }
  write("lib/secret.ex", "defmodule A do end\n");
  fs::permissions(root / "lib" / "secret.ex", fs::perms::none);
  auto result = scan_code_security(root, defaults());
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().reason.find("lib/secret.ex"), std::string::npos);
}

TEST_F(TempTree, DeeplyNestedSourceDoesNotExhaustTheStack)
{
  std::string deep = "defmodule A do\n  def f, do: ";
  for (int i = 0; i < 20000; ++i) deep += "[";
  deep += ":os.cmd('x')";
  for (int i = 0; i < 20000; ++i) deep += "]";
  deep += "\nend\n";
  write("lib/deep.ex", deep);
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_FALSE(result->threats.empty());
}

TEST_F(TempTree, EmptyFilesAndOtherExtensionsAreFine)
{
  write("lib/empty.ex", "");
  write("src/empty.erl", "");
  write("README.md", "System.cmd(\"ls\")");
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->threats.empty());
  EXPECT_TRUE(result->warnings.empty());
  EXPECT_EQ(result->files_scanned, 2u);
}

TEST_F(TempTree, SourceFilesLimitTheScan)
{
  write("lib/a.ex", "defmodule A do\n  def f, do: :os.cmd('x')\nend\n");
  write("lib/b.ex", "defmodule B do\nend\n");
  auto result = scan_code_security(root, defaults(), {"lib/b.ex"});
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->threats.empty());
  EXPECT_EQ(result->files_scanned, 1u);
}

TEST_F(TempTree, AMalformedShippedBeamIsAThreat)
{
  write("priv/Elixir.Evil.beam", std::string("FOR1\0\0\0\4BEAM", 12));
  auto result = scan_code_security(root, defaults());
  ASSERT_TRUE(result);
  ASSERT_EQ(result->threats.size(), 1u);
  EXPECT_EQ(result->threats[0].type, "unverifiable_beam");
  EXPECT_EQ(result->beams_audited, 1u);
}

TEST(ScanDepth, EachLevelOfIndirectionCostsOne)
{
  // alias (1) + variable (2) + attribute (3)
  std::string code = "defmodule A do\n  alias System, as: S\n  @m S\n  def f do\n    m = @m\n    m.cmd(\"x\", [])\n  end\nend\n";
  for (int depth = 0; depth <= 4; ++depth) {
    Report report({core::default_restricted_modules(), {}, depth});
    ASSERT_TRUE(scan_source("lib/a.ex", code, report));
    bool threat = !report.result().threats.empty();
    EXPECT_EQ(threat, depth >= 3) << "depth " << depth;
    if (!threat) {
      ASSERT_FALSE(report.result().warnings.empty()) << "depth " << depth;
      EXPECT_EQ(report.result().warnings[0].type, "unresolved_indirection");
    }
  }
}

TEST(ScanDepth, ApplyAndImportCostOneLevel)
{
  for (const char* code : {"defmodule A do\n  def f, do: apply(:os, :cmd, ['x'])\nend\n",
                           "defmodule A do\n  import :os\n  def f, do: cmd('x')\nend\n"}) {
    Report zero({core::default_restricted_modules(), {}, 0});
    ASSERT_TRUE(scan_source("a.ex", code, zero));
    EXPECT_TRUE(zero.result().threats.empty()) << code;
    Report one({core::default_restricted_modules(), {}, 1});
    ASSERT_TRUE(scan_source("a.ex", code, one));
    EXPECT_FALSE(one.result().threats.empty()) << code;
  }
}

TEST(AllowedOperations, AWhitelistedOperationIsNotReported)
{
  std::string code = "defmodule A do\n  def f, do: System.cmd(\"x\", [])\n  def g, do: File.rm!(\"x\")\nend\n";
  Report report({core::default_restricted_modules(), {"system_command"}, 3});
  ASSERT_TRUE(scan_source("a.ex", code, report));
  ASSERT_EQ(report.result().threats.size(), 1u);
  EXPECT_EQ(report.result().threats[0].operation, "file_delete");
}

TEST(Scopes, AnAliasDoesNotLeakOutOfItsFunction)
{
  std::string code = "defmodule A do\n  def f do\n    alias System, as: Json\n    Json.version()\n  end\n"
                     "  def g, do: Json.cmd(\"x\")\nend\n";
  Report report({core::default_restricted_modules(), {}, 3});
  ASSERT_TRUE(scan_source("a.ex", code, report));
  EXPECT_TRUE(report.result().threats.empty());
}

} // namespace
} // namespace sandbox::scan

namespace sandbox::scan {
namespace {

TEST(ScanResultJson, ReadsBackWhatItWritesAndRejectsTheRest)
{
  Report report({core::default_restricted_modules(), {}, 3});
  ASSERT_TRUE(scan_source("lib/a.ex",
                          "defmodule A do\n  def f, do: System.cmd(\"ls\", [])\n  def g, do: spawn(fn -> 1 end)\n"
                          "  def h(m \\\\ :os), do: m.cmd('ls')\nend\n",
                          report));
  const auto& result = report.result();
  ASSERT_FALSE(result.threats.empty());
  ASSERT_FALSE(result.warnings.empty());
  // A value_flow finding carries its related place, which is kept too.
  ASSERT_TRUE(std::any_of(result.threats.begin(), result.threats.end(),
                          [](const Finding& f) { return f.related && f.related->line == 4; }));
  auto back = result_from_json(to_json(result));
  ASSERT_TRUE(back);
  EXPECT_EQ(to_json(*back), to_json(result));
  auto broken = to_json(result);
  broken["threats"][0]["severity"] = "extreme";
  EXPECT_FALSE(result_from_json(broken));
  broken = to_json(result);
  broken["warnings"][0].erase("context");
  EXPECT_FALSE(result_from_json(broken));
  broken = to_json(result);
  for (auto& threat : broken["threats"]) {
    if (threat.contains("related")) threat["related"].erase("line");
  }
  EXPECT_FALSE(result_from_json(broken));
  EXPECT_FALSE(result_from_json(nlohmann::json::array()));
}

} // namespace
} // namespace sandbox::scan
