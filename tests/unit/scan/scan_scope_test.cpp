// Where code runs decides what is a threat (docs/security.md): code that runs
// only in the jail (mix.exs, config, scripts, tests) and Mix tasks are
// reported but not threats with scan_scope compiled; scan_scope all judges
// every file; host code that reaches a Mix task is a threat.

#include "scan/elixir_scanner.h"
#include "scan/scanner.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace sandbox::scan {
namespace {

namespace fs = std::filesystem;

ScanConfig config(core::ScanScope scope = core::ScanScope::compiled)
{
  return {core::default_restricted_modules(), {}, 3, scope};
}

const char* const kMixExsWithAlias = R"(defmodule Lib.MixProject do
  use Mix.Project

  def project do
    [app: :lib, version: "0.1.0", aliases: aliases()]
  end

  defp aliases do
    ["assets.build": &build_assets/1, setup: ["deps.get", &build_assets/1]]
  end

  defp build_assets(_args) do
    {_, 0} = System.cmd("npm", ["run", "build"], cd: "assets")
  end
end
)";

const char* const kMixTask = R"(defmodule Mix.Tasks.Lib.Gen do
  use Mix.Task

  @shortdoc "Generates lib/lib/tables.ex from priv/tables.exs"
  def run(args) do
    Code.require_file("priv/tables.exs")
    File.write!("lib/lib/tables.ex", render(args))
  end

  defp render(args), do: inspect(args)
end
)";

const char* const kLibModule = R"(defmodule Lib.Tables do
  def run(args) do
    Code.require_file("priv/tables.exs")
    File.write!("lib/lib/tables.ex", inspect(args))
  end
end
)";

class ScanScope : public ::testing::Test {
protected:
  void SetUp() override
  {
    char pattern[] = "/tmp/scan_scope_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root = pattern;
  }
  void TearDown() override
  {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  void write(const std::string& relative, const std::string& content)
  {
    fs::create_directories((root / relative).parent_path());
    std::ofstream(root / relative, std::ios::binary) << content;
  }
  ScanResult scan(core::ScanScope scope = core::ScanScope::compiled)
  {
    auto result = scan_code_security(root, config(scope));
    EXPECT_TRUE(result) << result.error().reason;
    return result ? *result : ScanResult{};
  }
  fs::path root;
};

std::vector<std::string> operations(const std::vector<Finding>& findings)
{
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.operation);
  std::sort(out.begin(), out.end());
  return out;
}

std::string describe(const std::vector<Finding>& findings)
{
  std::string out;
  for (const auto& f : findings) {
    out += fmt::format("  {}:{} [{}] {} {} ({})\n", f.file, f.line, to_string(f.severity), f.type, f.operation,
                       to_string(f.runs_in));
  }
  return out.empty() ? "  (none)\n" : out;
}

TEST_F(ScanScope, SystemCmdInAMixExsAliasIsReportedButNotAThreat)
{
  write("mix.exs", kMixExsWithAlias);
  auto result = scan();
  EXPECT_TRUE(result.threats.empty()) << describe(result.threats);
  ASSERT_EQ(result.warnings.size(), 1u) << describe(result.warnings);
  const auto& warning = result.warnings[0];
  EXPECT_EQ(warning.operation, "system_command");
  EXPECT_EQ(warning.file, "mix.exs");
  EXPECT_EQ(warning.line, 13u);
  EXPECT_EQ(warning.runs_in, RunsIn::jail);
  EXPECT_EQ(to_json(warning)["runs_in"], "jail");
  EXPECT_NE(warning.message.find("was critical"), std::string::npos) << warning.message;

  auto all = scan(core::ScanScope::all);
  ASSERT_EQ(all.threats.size(), 1u) << describe(all.threats);
  EXPECT_EQ(all.threats[0].severity, Severity::critical);
  EXPECT_EQ(all.threats[0].runs_in, RunsIn::jail);
}

TEST_F(ScanScope, AMixTaskInLibIsReportedButNotAThreat)
{
  write("lib/mix/tasks/lib.gen.ex", kMixTask);
  auto result = scan();
  EXPECT_TRUE(result.threats.empty()) << describe(result.threats);
  EXPECT_EQ(operations(result.warnings), (std::vector<std::string>{"code_evaluation", "file_write"}))
    << describe(result.warnings);
  for (const auto& warning : result.warnings) {
    EXPECT_EQ(warning.runs_in, RunsIn::mix);
    EXPECT_NE(warning.message.find("a Mix task runs only under Mix"), std::string::npos) << warning.message;
  }
  auto all = scan(core::ScanScope::all);
  EXPECT_EQ(operations(all.threats), (std::vector<std::string>{"code_evaluation", "file_write"}))
    << describe(all.threats);
  EXPECT_TRUE(all.warnings.empty()) << describe(all.warnings);
}

TEST_F(ScanScope, TheSameCallsInAnOrdinaryModuleAreThreatsInEveryScope)
{
  write("lib/lib/tables.ex", kLibModule);
  for (auto scope : {core::ScanScope::compiled, core::ScanScope::all}) {
    auto result = scan(scope);
    EXPECT_EQ(operations(result.threats), (std::vector<std::string>{"code_evaluation", "file_write"}))
      << describe(result.threats);
    for (const auto& threat : result.threats) EXPECT_EQ(threat.runs_in, RunsIn::host);
  }
}

TEST_F(ScanScope, AFileWithATaskAndAnotherModuleIsJudgedModuleByModule)
{
  write("lib/lib.ex", std::string(kMixTask) + kLibModule);
  auto result = scan();
  EXPECT_EQ(operations(result.threats), (std::vector<std::string>{"code_evaluation", "file_write"}))
    << describe(result.threats);
  for (const auto& threat : result.threats) EXPECT_GE(threat.line, 12u) << "the ordinary module's calls";
  EXPECT_EQ(operations(result.warnings), (std::vector<std::string>{"code_evaluation", "file_write"}))
    << describe(result.warnings);
}

// Code inside a task's module that a host can run anyway stays host code.
TEST_F(ScanScope, WhatAHostCanRunInsideATaskIsStillJudged)
{
  const std::vector<std::pair<std::string, std::string>> cases = {
    {"on_load", "defmodule Mix.Tasks.Evil do\n  @on_load :init\n  def init, do: :ok\nend\n"},
    {"defimpl", "defmodule Mix.Tasks.Evil do\n  defimpl String.Chars, for: Tuple do\n"
                "    def to_string(_), do: elem(System.cmd(\"id\", []), 0)\n  end\nend\n"},
    {"quote", "defmodule Mix.Tasks.Evil do\n  defmacro __using__(_) do\n"
              "    quote do\n      def pwn, do: System.cmd(\"id\", [])\n    end\n  end\nend\n"},
    {"nested host module", "defmodule Mix.Tasks.Evil do\n  defmodule Elixir.Host do\n"
                           "    def pwn, do: System.cmd(\"id\", [])\n  end\nend\n"},
    {"no do block", "defmodule Mix.Tasks.Evil, do: def(run(_), do: System.cmd(\"id\", []))\n"},
    {"aliased Mix", "alias Lib.Tools, as: Mix\ndefmodule Mix.Tasks.Evil do\n"
                    "  def run(_), do: System.cmd(\"id\", [])\nend\n"},
  };
  for (const auto& [name, code] : cases) {
    SCOPED_TRACE(name);
    write("lib/evil.ex", code);
    auto result = scan();
    EXPECT_FALSE(result.threats.empty()) << describe(result.warnings);
  }
}

TEST_F(ScanScope, HostCodeThatCallsATaskIsAThreat)
{
  write("lib/mix/tasks/lib.gen.ex", kMixTask);
  const std::vector<std::string> calls = {
    "Mix.Tasks.Lib.Gen.run([])",
    "apply(Mix.Tasks.Lib.Gen, :run, [[]])",
    "Enum.each([[]], &Mix.Tasks.Lib.Gen.run/1)",
    "Module.concat([\"Mix.Tasks.Lib.Gen\"]).run([])",
    "String.to_atom(\"Elixir.Mix.Tasks.\" <> \"Lib.Gen\").run([])",
  };
  for (const auto& call : calls) {
    SCOPED_TRACE(call);
    write("lib/lib.ex", "defmodule Lib do\n  def go do\n    " + call + "\n  end\nend\n");
    auto result = scan();
    ASSERT_EQ(result.threats.size(), 1u) << describe(result.threats);
    EXPECT_EQ(result.threats[0].type, "mix_task_reference");
    EXPECT_EQ(result.threats[0].operation, "mix_task");
    EXPECT_EQ(result.threats[0].file, "lib/lib.ex");
    EXPECT_EQ(result.threats[0].module, "Mix.Tasks.Lib.Gen");
  }
  write("lib/lib.ex", "defmodule Lib do\n  alias Mix.Tasks.Lib.Gen\n  def go, do: Gen.run([])\nend\n");
  EXPECT_EQ(scan().threats.size(), 1u);
  // With scope all the task itself is judged, and a reference adds nothing.
  auto all = scan(core::ScanScope::all);
  EXPECT_EQ(operations(all.threats), (std::vector<std::string>{"code_evaluation", "file_write"}))
    << describe(all.threats);
  // Tasks call tasks, and jail-only code runs them: neither is a threat.
  write("lib/lib.ex", "defmodule Mix.Tasks.Lib.All do\n  def run(a), do: Mix.Tasks.Lib.Gen.run(a)\nend\n");
  write("mix.exs", "defmodule Lib.MixProject do\n  defp gen(a), do: Mix.Tasks.Lib.Gen.run(a)\nend\n");
  auto calls_from_tasks = scan();
  EXPECT_TRUE(calls_from_tasks.threats.empty()) << describe(calls_from_tasks.threats);
}

TEST_F(ScanScope, JailOnlyFilesStayJailOnlyWhateverModuleTheyDefine)
{
  write("test/support/mix/tasks/lib.fixture.ex", kMixTask);
  write("test/support/helper.ex", kLibModule);
  auto result = scan();
  EXPECT_TRUE(result.threats.empty()) << describe(result.threats);
  EXPECT_EQ(result.warnings.size(), 4u) << describe(result.warnings);
  for (const auto& warning : result.warnings) EXPECT_EQ(warning.runs_in, RunsIn::jail);
}

TEST_F(ScanScope, NamedSourceFilesAreCompiledCode)
{
  // compile_file and source_files: the backend compiles exactly these.
  write("script.ex", kLibModule);
  auto result = scan_code_security(root, config(), {"script.ex"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->threats.size(), 2u) << describe(result->threats);
}

// The partial parse (scan/elixir_prefilter.h) must see what the whole parse
// sees: the enclosing task module and every reference to a task.
TEST(ScanScopeParse, PartialAndWholeParsesAgree)
{
  std::vector<std::string> sources = {kMixExsWithAlias, kMixTask, kLibModule,
                                      std::string(kMixTask) + kLibModule};
  sources.push_back("defmodule Lib do\n  alias Mix.Tasks.Lib.Gen, as: G\n  def a, do: 1\n"
                    "  def b, do: :ok\n  def go do\n    m = G\n    m.run([])\n  end\nend\n");
  sources.push_back("defmodule Mix do\n  defmodule Tasks.Evil do\n    def x, do: 1\n"
                    "    def run(_), do: File.rm_rf!(\"tmp\")\n  end\nend\n");
  for (const auto& source : sources) {
    SCOPED_TRACE(source);
    Report partial(config());
    Report whole(config());
    ASSERT_TRUE(scan_elixir_source("lib/a.ex", source, partial, ElixirParse::skip_inert_blocks));
    ASSERT_TRUE(scan_elixir_source("lib/a.ex", source, whole, ElixirParse::whole));
    EXPECT_EQ(to_json(partial.result()), to_json(whole.result()));
    EXPECT_FALSE(partial.result().threats.empty() && partial.result().warnings.empty());
  }
}

} // namespace
} // namespace sandbox::scan
