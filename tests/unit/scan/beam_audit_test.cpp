// The audit of the BEAMs a compile produced follows the same policy as the
// source scan: a Mix task's imports are reported, not threats (unless it has
// an on_load function), any other module is judged, and host code or an
// application file that names a Mix task is a threat.

#include "scan/beam_audit.h"
#include "scan/scanner.h"
#include "util/fs.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace sandbox::scan {
namespace {

namespace fs = std::filesystem;

const char* const kModules = R"(defmodule Mix.Tasks.Lib.Gen do
  def run(args) do
    Code.require_file("priv/tables.exs")
    File.write!("lib/lib/tables.ex", inspect(args))
  end
end

defmodule Mix.Tasks.Lib.Loaded do
  @on_load :init
  def init, do: :ok
  def run(args), do: File.write!("out", inspect(args))
end

defmodule Lib.Tables do
  def run(args), do: File.write!("lib/lib/tables.ex", inspect(args))
end

defmodule Lib.Runner do
  def go, do: Mix.Tasks.Lib.Gen.run([])
end

defmodule Lib.Starter do
  def start, do: GenServer.start(Mix.Tasks.Lib.Gen, [])
end
)";

// The modules above compiled once by elixirc, or why not.
struct Compiled {
  std::optional<util::TempDir> dir;
  std::string why;
  [[nodiscard]] fs::path beam(const std::string& module) const { return dir->path() / ("Elixir." + module + ".beam"); }
};

const Compiled& compiled()
{
  static const Compiled out = [] {
    Compiled c;
    if (std::system("command -v elixirc >/dev/null 2>&1") != 0) {
      c.why = "elixirc is not installed";
      return c;
    }
    auto dir = util::TempDir::create("/tmp", "beam-audit-test-");
    if (!dir) {
      c.why = dir.error();
      return c;
    }
    c.dir.emplace(std::move(*dir));
    auto source = c.dir->path() / "modules.ex";
    (void)util::write_file_atomic(source, kModules);
    auto command = fmt::format("cd '{}' && elixirc --ignore-module-conflict -o . modules.ex >/dev/null 2>&1",
                               c.dir->path().string());
    if (std::system(command.c_str()) != 0 || !fs::exists(c.beam("Lib.Starter"))) c.why = "elixirc failed";
    return c;
  }();
  return out;
}

ScanConfig config(core::ScanScope scope = core::ScanScope::compiled)
{
  return {core::default_restricted_modules(), {}, 3, scope};
}

std::vector<std::string> operations(const std::vector<Finding>& findings)
{
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.operation);
  std::sort(out.begin(), out.end());
  return out;
}

#define REQUIRE_COMPILED()                                      \
  if (!compiled().why.empty()) GTEST_SKIP() << compiled().why

TEST(BeamAuditScope, AMixTaskBeamIsReportedButNotAThreat)
{
  REQUIRE_COMPILED();
  auto result = audit_beam_files({compiled().beam("Mix.Tasks.Lib.Gen")}, config());
  EXPECT_TRUE(result.threats.empty());
  EXPECT_EQ(operations(result.warnings), (std::vector<std::string>{"code_evaluation", "file_write"}));
  for (const auto& warning : result.warnings) EXPECT_EQ(warning.runs_in, RunsIn::mix);
  auto all = audit_beam_files({compiled().beam("Mix.Tasks.Lib.Gen")}, config(core::ScanScope::all));
  EXPECT_EQ(operations(all.threats), (std::vector<std::string>{"code_evaluation", "file_write"}));
}

TEST(BeamAuditScope, ATaskWithAnOnLoadFunctionAndAnyOtherModuleAreJudged)
{
  REQUIRE_COMPILED();
  for (const char* module : {"Mix.Tasks.Lib.Loaded", "Lib.Tables"}) {
    auto result = audit_beam_files({compiled().beam(module)}, config());
    ASSERT_EQ(operations(result.threats), std::vector<std::string>{"file_write"}) << module;
    EXPECT_EQ(result.threats[0].runs_in, RunsIn::host);
  }
}

TEST(BeamAuditScope, HostCodeThatNamesATaskIsAThreat)
{
  REQUIRE_COMPILED();
  for (const char* module : {"Lib.Runner", "Lib.Starter"}) {
    auto result = audit_beam_files({compiled().beam(module)}, config());
    ASSERT_EQ(result.threats.size(), 1u) << module;
    EXPECT_EQ(result.threats[0].type, "mix_task_reference");
    EXPECT_EQ(result.threats[0].operation, "mix_task");
    EXPECT_EQ(result.threats[0].module, "Mix.Tasks.Lib.Gen");
    EXPECT_EQ(result.threats[0].file, fmt::format("Elixir.{}.beam", module));
    // With scope all the task is judged itself; naming it adds nothing.
    EXPECT_TRUE(audit_beam_files({compiled().beam(module)}, config(core::ScanScope::all)).threats.empty());
  }
}

TEST(BeamAuditScope, AShippedTaskBeamIsJudgedWhateverItsModule)
{
  REQUIRE_COMPILED();
  auto tree = util::TempDir::create("/tmp", "beam-audit-tree-");
  ASSERT_TRUE(tree) << tree.error();
  fs::create_directories(tree->path() / "priv");
  fs::copy_file(compiled().beam("Mix.Tasks.Lib.Gen"), tree->path() / "priv" / "Elixir.Mix.Tasks.Lib.Gen.beam");
  auto result = scan_code_security(tree->path(), config());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(operations(result->threats), (std::vector<std::string>{"code_evaluation", "file_write"}));
}

TEST(BeamAuditScope, AnApplicationWhoseCallbackIsATaskIsAThreat)
{
  auto dir = util::TempDir::create("/tmp", "beam-audit-app-");
  ASSERT_TRUE(dir) << dir.error();
  auto app = dir->path() / "lib.app";
  auto threats = [&](const std::string& text, core::ScanScope scope = core::ScanScope::compiled) {
    EXPECT_TRUE(util::write_file_atomic(app, text));
    return audit_beam_files({}, config(scope), {app}).threats;
  };
  auto found = threats("{application,lib,[{modules,['Elixir.Mix.Tasks.Lib.Gen']},"
                       "{mod,{'Elixir.Mix.Tasks.Lib.Gen',[]}}]}.\n");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].type, "mix_task_reference");
  EXPECT_EQ(found[0].file, "lib.app");
  EXPECT_EQ(found[0].module, "Mix.Tasks.Lib.Gen");
  EXPECT_EQ(threats("{application, lib,\n [{mod, % the callback\n   { 'Elixir.Mix.Tasks.X' , [] }}]}.\n").size(), 1u);
  EXPECT_EQ(threats("{application,lib,[{mod,{'Elixir.Mix.Tasks\\x{2e}X',[]}}]}.\n").size(), 1u);
  // A task listed among the modules is not started; an ordinary callback is fine.
  EXPECT_TRUE(threats("{application,lib,[{modules,['Elixir.Mix.Tasks.X']},{mod,{'Elixir.Lib.App',[]}}]}.\n").empty());
  EXPECT_TRUE(threats("{application,lib,[{mod,{'Elixir.Mix.Tasks.X',[]}}]}.\n", core::ScanScope::all).empty());
}

} // namespace
} // namespace sandbox::scan
