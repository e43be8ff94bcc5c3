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

defmodule Lib.Lister do
  def tasks, do: [Mix.Tasks.Lib.Gen]
end

defmodule Lib.Capturer do
  def runner, do: &Mix.Tasks.Lib.Gen.run/1
end
)";

// Modules compiled once by elixirc, or why not.
struct Compiled {
  std::optional<util::TempDir> dir;
  std::string why;
  [[nodiscard]] fs::path beam(const std::string& module) const { return dir->path() / ("Elixir." + module + ".beam"); }
};

Compiled compile_modules(const char* source, const std::string& last_module)
{
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
  (void)util::write_file_atomic(c.dir->path() / "modules.ex", source);
  auto command = fmt::format("cd '{}' && elixirc --ignore-module-conflict -o . modules.ex >/dev/null 2>&1",
                             c.dir->path().string());
  if (std::system(command.c_str()) != 0 || !fs::exists(c.beam(last_module))) c.why = "elixirc failed";
  return c;
}

const Compiled& compiled()
{
  static const Compiled out = compile_modules(kModules, "Lib.Capturer");
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
  // A call, a module passed as a value, a module in a literal list, a
  // captured function (a literal external fun): each names the task.
  for (const char* module : {"Lib.Runner", "Lib.Starter", "Lib.Lister", "Lib.Capturer"}) {
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

// A module of the rule table used as a value reaches a dynamic call whose
// import table shows only erlang:apply (or nothing: the apply instruction).
const char* const kValueFlow = R"(defmodule VF.ListClosure do
  def go, do: Enum.each([System], fn m -> m.cmd("id", []) end)
end

defmodule VF.Default do
  def run(args, runner \\ :os), do: runner.cmd(args)
end

defmodule VF.Options do
  def opts, do: [mod: System, fun: :halt]
  def go(o), do: apply(o[:mod], o[:fun], [])
end

defmodule VF.Concat do
  def go(name), do: Module.concat([name]).open_port({:spawn, "sh"}, [])
end

defmodule VF.Capture do
  def runner, do: &System.cmd/2
end

defmodule VF.Benign do
  @mods [System, File, :os]
  def available, do: Enum.filter(@mods, &Code.ensure_loaded?/1)
  def has_x?(mod), do: function_exported?(mod, :x, 1)
  def read(path, fs \\ File), do: fs.read(path)
  def call(mod, fun, args), do: apply(mod, fun, args)
end

defmodule VF.Unrelated do
  def home, do: System.get_env("HOME")
  def cmd(x), do: {:cmd, x}
  def call(mod, fun, args), do: apply(mod, fun, args)
  def stop(server), do: server.stop()
end
)";

const Compiled& value_flow_compiled()
{
  static const Compiled out = compile_modules(kValueFlow, "VF.Unrelated");
  return out;
}

TEST(BeamAuditValueFlow, AModuleUsedAsAValueWithADynamicCallOfItsFunctionIsAThreat)
{
  if (!value_flow_compiled().why.empty()) GTEST_SKIP() << value_flow_compiled().why;
  struct Case {
    const char* module;
    const char* target;
    const char* function;
    const char* operation;
  };
  for (const auto& c : {Case{"VF.ListClosure", "System", "cmd", "system_command"},
                        Case{"VF.Default", ":os", "cmd", "system_command"},
                        Case{"VF.Options", "System", "halt", "system_halt"},
                        Case{"VF.Concat", ":erlang", "open_port", "port_access"}}) {
    SCOPED_TRACE(c.module);
    auto result = audit_beam_files({value_flow_compiled().beam(c.module)}, config());
    ASSERT_EQ(result.threats.size(), 1u) << to_json(result).dump(2);
    const auto& threat = result.threats[0];
    EXPECT_EQ(threat.type, "value_flow");
    EXPECT_EQ(threat.operation, c.operation);
    EXPECT_EQ(threat.module, c.target);
    EXPECT_EQ(threat.function, c.function);
    EXPECT_EQ(threat.file, fmt::format("Elixir.{}.beam", c.module));
    ASSERT_TRUE(threat.related.has_value());
    // The low erlang:apply warning gives way to the threat.
    for (const auto& warning : result.warnings) EXPECT_NE(warning.type, "dynamic_dispatch") << warning.message;
    // allowed_operations drops it as it drops a direct call.
    auto allowed = config();
    allowed.allowed_operations.push_back(c.operation);
    EXPECT_TRUE(audit_beam_files({value_flow_compiled().beam(c.module)}, allowed).threats.empty());
  }
  auto list = audit_beam_files({value_flow_compiled().beam("VF.ListClosure")}, config());
  EXPECT_EQ(list.threats[0].related->matched_text, "Elixir.System");
  EXPECT_EQ(list.threats[0].severity, Severity::critical);
}

TEST(BeamAuditValueFlow, ACapturedFunctionIsJudgedAsAnImportIs)
{
  if (!value_flow_compiled().why.empty()) GTEST_SKIP() << value_flow_compiled().why;
  // &System.cmd/2 is a literal external fun: no import shows it.
  auto result = audit_beam_files({value_flow_compiled().beam("VF.Capture")}, config());
  ASSERT_EQ(result.threats.size(), 1u) << to_json(result).dump(2);
  EXPECT_EQ(result.threats[0].type, "dangerous_import");
  EXPECT_EQ(result.threats[0].module, "System");
  EXPECT_EQ(result.threats[0].function, "cmd");
  EXPECT_EQ(result.threats[0].arity, 2u);
}

TEST(BeamAuditValueFlow, ModulesAsValuesWithoutADangerousFunctionAreNotThreats)
{
  if (!value_flow_compiled().why.empty()) GTEST_SKIP() << value_flow_compiled().why;
  // Restricted modules as values and apply of a computed function, but no
  // dangerous function named with them; and a module whose atom table holds
  // System (a called module) and cmd (its own function, a tag) for reasons
  // that have nothing to do with each other.
  for (const char* module : {"VF.Benign", "VF.Unrelated"}) {
    auto result = audit_beam_files({value_flow_compiled().beam(module)}, config());
    EXPECT_TRUE(result.threats.empty()) << module << ": " << to_json(result).dump(2);
    EXPECT_TRUE(std::any_of(result.warnings.begin(), result.warnings.end(),
                            [](const Finding& f) { return f.type == "dynamic_dispatch"; }))
      << module << ": the erlang:apply import stays a low warning";
  }
}

// Functions that take M, F, A call them inside OTP: the import table shows
// erlang:spawn/3 or 'Elixir.Task':start/3, never System.cmd.
const char* const kMfaCalls = R"(defmodule MFA.Spawn do
  def go, do: spawn(System, :cmd, ["id", []])
end

defmodule MFA.Task do
  def go(args), do: Task.start(System, :cmd, args)
end

defmodule MFA.Timer do
  def go, do: :timer.apply_after(10, :os, :cmd, [~c"id"])
end

defmodule MFA.Supervised do
  def go(sup), do: Task.Supervisor.start_child(sup, File, :rm_rf!, ["/tmp/x"])
end

defmodule MFA.Nested do
  def go, do: spawn(Kernel, :apply, [System, :cmd, ["id", []]])
end

defmodule MFA.Dynamic do
  def runners, do: [System]
  def go(m), do: spawn(m, :cmd, ["id", []])
end

defmodule MFA.Benign do
  def loop, do: spawn(MyWorker, :loop, [])
  def each, do: Task.start(Enum, :each, [[1], &IO.inspect/1])
  def later, do: :timer.apply_after(1000, Logger, :info, ["x"])
  def own(x), do: spawn(__MODULE__, :worker, [x])
  def worker(path), do: File.read(path)
  def home, do: Task.start(System, :get_env, ["HOME"])
  def stop(server), do: server.stop()
end
)";

const Compiled& mfa_compiled()
{
  static const Compiled out = compile_modules(kMfaCalls, "MFA.Benign");
  return out;
}

TEST(BeamAuditMfaCalls, AModuleAndFunctionGivenToSpawnAndKinAreJudgedAsACall)
{
  if (!mfa_compiled().why.empty()) GTEST_SKIP() << mfa_compiled().why;
  struct Case {
    const char* module;
    const char* target;
    const char* function;
    const char* operation;
    const char* through;
  };
  for (const auto& c : {Case{"MFA.Spawn", "System", "cmd", "system_command", "erlang:spawn/3"},
                        Case{"MFA.Task", "System", "cmd", "system_command", "Elixir.Task:start/3"},
                        Case{"MFA.Timer", ":os", "cmd", "system_command", "timer:apply_after/4"},
                        Case{"MFA.Supervised", "File", "rm_rf!", "file_delete",
                             "Elixir.Task.Supervisor:start_child/4"}}) {
    SCOPED_TRACE(c.module);
    auto result = audit_beam_files({mfa_compiled().beam(c.module)}, config());
    ASSERT_EQ(result.threats.size(), 1u) << to_json(result).dump(2);
    const auto& threat = result.threats[0];
    EXPECT_EQ(threat.type, "dangerous_operation");
    EXPECT_EQ(threat.operation, c.operation);
    EXPECT_EQ(threat.module, c.target);
    EXPECT_EQ(threat.function, c.function);
    EXPECT_NE(threat.message.find(c.through), std::string::npos) << threat.message;
    // allowed_operations drops it as it drops a direct call.
    auto allowed = config();
    allowed.allowed_operations.push_back(c.operation);
    EXPECT_TRUE(audit_beam_files({mfa_compiled().beam(c.module)}, allowed).threats.empty());
  }
}

TEST(BeamAuditMfaCalls, AComputedModuleOrANestedApplyIsValueFlow)
{
  if (!mfa_compiled().why.empty()) GTEST_SKIP() << mfa_compiled().why;
  // spawn(m, :cmd, args) with System a value elsewhere; spawn(Kernel, :apply,
  // [System, :cmd, args]), whose M and F are in a literal list.
  for (const char* module : {"MFA.Dynamic", "MFA.Nested"}) {
    auto result = audit_beam_files({mfa_compiled().beam(module)}, config());
    ASSERT_EQ(result.threats.size(), 1u) << module << ": " << to_json(result).dump(2);
    EXPECT_EQ(result.threats[0].type, "value_flow") << module;
    EXPECT_EQ(result.threats[0].module, "System") << module;
    EXPECT_EQ(result.threats[0].function, "cmd") << module;
  }
}

TEST(BeamAuditMfaCalls, ProcessesOfOrdinaryModulesAreNotThreats)
{
  if (!mfa_compiled().why.empty()) GTEST_SKIP() << mfa_compiled().why;
  // The module given to Task.start is judged there (System.get_env, a low
  // warning), not a value: as one, it would make server.stop() a System.stop.
  auto result = audit_beam_files({mfa_compiled().beam("MFA.Benign")}, config());
  EXPECT_TRUE(result.threats.empty()) << to_json(result).dump(2);
  auto warned = [&](const char* operation) {
    return std::any_of(result.warnings.begin(), result.warnings.end(),
                       [&](const Finding& f) { return f.operation == operation; });
  };
  EXPECT_TRUE(warned("process_spawn")) << "spawn stays a low warning";
  EXPECT_TRUE(warned("process_introspection")) << "System.get_env given to Task.start is judged";
}

TEST(BeamAuditMfaCalls, ErlcOutputIsJudgedTheSameWay)
{
  if (std::system("command -v erlc >/dev/null 2>&1") != 0) GTEST_SKIP() << "erlc is not installed";
  auto dir = util::TempDir::create("/tmp", "beam-audit-erl-");
  ASSERT_TRUE(dir) << dir.error();
  ASSERT_TRUE(util::write_file_atomic(dir->path() / "mfa.erl",
                                      "-module(mfa).\n-export([a/0, b/0, c/1]).\n"
                                      "a() -> spawn(os, cmd, [\"id\"]).\n"
                                      "b() -> timer:apply_after(1000, os, cmd, [\"id\"]).\n"
                                      "c(X) -> proc_lib:spawn_link(?MODULE, a, [X]).\n"));
  auto command = fmt::format("cd '{}' && erlc mfa.erl >/dev/null 2>&1", dir->path().string());
  ASSERT_EQ(std::system(command.c_str()), 0);
  auto result = audit_beam_files({dir->path() / "mfa.beam"}, config());
  ASSERT_EQ(result.threats.size(), 2u) << to_json(result).dump(2);
  for (const auto& threat : result.threats) {
    EXPECT_EQ(threat.module, ":os");
    EXPECT_EQ(threat.function, "cmd");
    EXPECT_EQ(threat.operation, "system_command");
  }
}

} // namespace
} // namespace sandbox::scan
