// Real jobs in the real jail: the toolchain runs, output is captured, the
// job sees only what it was given.

#include "jail_test_support.h"

#include <algorithm>
#include <cstdlib>

namespace sandbox::jail::testing {
namespace {

using NamespaceRunnerTest = JailTest;

TEST_F(NamespaceRunnerTest, ShellEchoIsCaptured)
{
  auto result = runner().run(shell("echo hi"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "hi\n");
  EXPECT_GT(result.usage.wall_time_ms, 0);
}

TEST_F(NamespaceRunnerTest, ExitCodeIsForwarded)
{
  auto result = runner().run(shell("exit 7"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.exit_code, 7);
}

TEST_F(NamespaceRunnerTest, SignalIsReported)
{
  auto result = runner().run(shell("kill -TERM $$"));
  ASSERT_EQ(result.verdict, Verdict::signaled) << describe(result);
  EXPECT_EQ(result.signal, SIGTERM);
}

TEST_F(NamespaceRunnerTest, JobSeesItsOwnIdentity)
{
  auto result = runner().run(shell("echo $(cat /proc/self/status | sed -n 's/^Uid:\\t*//p' | cut "
                                   "-f1) $(cat /etc/hostname 2>/dev/null || uname -n) $$; "
                                   "sed -n 's/^\\(sandbox\\):.*/\\1/p' /etc/passwd"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  // uid 1000 inside, hostname "sandbox", pid 2 (init is 1), a passwd entry.
  EXPECT_EQ(result.output, "1000 sandbox 2\nsandbox\n");
}

TEST_F(NamespaceRunnerTest, ErlRunsInTheJail)
{
  auto result = runner().run(
      spec({"/usr/bin/erl", "-noshell", "-eval", "io:format(\"~p~n\",[node()]), halt()."}));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "nonode@nohost\n");
  EXPECT_GT(result.usage.peak_memory_bytes, 0u);
}

TEST_F(NamespaceRunnerTest, ElixirRunsInTheJail)
{
  auto result = runner().run(spec({"/usr/bin/elixir", "-e", "IO.puts(:ok)"}));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.output, "ok\n");
  EXPECT_GT(result.usage.cpu_time_ms, 0);
}

TEST_F(NamespaceRunnerTest, ErlcCompilesFromReadOnlySourceIntoJob)
{
  auto source = util::TempDir::create(util::default_temp_root(), "jail-src-");
  ASSERT_TRUE(source);
  ::chmod(source->path().c_str(), 0755);
  write_text(source->path() / "hello.erl", "-module(hello).\n-export([hi/0]).\nhi() -> ok.\n");
  auto job_spec = spec({"/usr/bin/erlc", "-o", "/job", "/sandbox/hello.erl"});
  job_spec.binds.push_back({source->path(), "/sandbox", false});
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(job() / "hello.beam"));
}

TEST_F(NamespaceRunnerTest, ElixircAndMixCompile)
{
  auto source = util::TempDir::create(util::default_temp_root(), "jail-src-");
  ASSERT_TRUE(source);
  ::chmod(source->path().c_str(), 0755);
  write_text(source->path() / "foo.ex", "defmodule Foo do\n  def x, do: 1\nend\n");
  auto elixirc = spec({"/usr/bin/elixirc", "-o", "/job/out", "/sandbox/foo.ex"});
  elixirc.binds.push_back({source->path(), "/sandbox", false});
  auto result = runner().run(elixirc);
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(job() / "out" / "Elixir.Foo.beam"));

  fs::create_directories(job() / "proj" / "lib");
  write_text(job() / "proj" / "mix.exs",
             "defmodule P.MixProject do\n  use Mix.Project\n  def project, do: [app: :p, "
             "version: \"0.1.0\"]\nend\n");
  write_text(job() / "proj" / "lib" / "foo.ex", "defmodule Foo do\n  def x, do: 1\nend\n");
  auto mix = spec({"/usr/bin/mix", "compile"});
  mix.cwd = "/job/proj";
  mix.env.push_back("MIX_HOME=/job/.mix");
  result = runner().run(mix);
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(fs::exists(job() / "proj/_build/dev/lib/p/ebin/Elixir.Foo.beam")) << result.output;
}

TEST_F(NamespaceRunnerTest, HostSecretsAndEnvironmentAreAbsent)
{
  ::setenv("SANDBOX_TEST_SECRET", "leak", 1);
  auto result = runner().run(shell("cat /etc/shadow; echo rc=$?; env"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_NE(result.output.find("rc=1"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("SANDBOX_TEST_SECRET"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("root:"), std::string::npos) << result.output;
  ::unsetenv("SANDBOX_TEST_SECRET");
}

TEST_F(NamespaceRunnerTest, ReadOnlyBindAndRootAreNotWritable)
{
  auto source = util::TempDir::create(util::default_temp_root(), "jail-src-");
  ASSERT_TRUE(source);
  ::chmod(source->path().c_str(), 0777); // even a world-writable dir stays read-only
  auto job_spec = shell("echo x > /sandbox/f; echo a=$?; echo x > /x; echo b=$?; "
                        "echo x > /usr/lib/erlang/x; echo c=$?; echo x > /tmp/t; echo d=$?; "
                        "echo x > /job/w; echo e=$?");
  job_spec.binds.push_back({source->path(), "/sandbox", false});
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_NE(result.output.find("a=2"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("b=2"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("c=2"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("d=0"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("e=0"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(source->path() / "f"));
  EXPECT_TRUE(fs::exists(job() / "w"));
}

TEST_F(NamespaceRunnerTest, MissingProgramIsSetupFailure)
{
  auto result = runner().run(spec({"/no/such/program"}));
  ASSERT_EQ(result.verdict, Verdict::setup_failure) << describe(result);
  EXPECT_EQ(result.setup_stage, "execve");
  EXPECT_NE(result.setup_error.find("No such file"), std::string::npos) << result.setup_error;
  EXPECT_EQ(result.exit_code, -1);
}

TEST_F(NamespaceRunnerTest, MissingBindSourceIsSetupFailure)
{
  auto job_spec = shell("true");
  job_spec.binds.push_back({"/no/such/dir", "/sandbox", false});
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::setup_failure);
  EXPECT_EQ(result.setup_stage, "mount_plan");
}

TEST_F(NamespaceRunnerTest, MissingCwdIsSetupFailure)
{
  auto job_spec = shell("true");
  job_spec.cwd = "/nowhere";
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::setup_failure);
  EXPECT_EQ(result.setup_stage, "chdir");
}

TEST_F(NamespaceRunnerTest, IsolationReportsLayers)
{
  auto isolation = runner().isolation();
  EXPECT_EQ(isolation.mode, "jail");
  for (const char* layer : {"user_ns", "pid_ns", "mount_ns", "net_ns", "ipc_ns", "uts_ns",
                            "no_new_privs", "capabilities_dropped", "seccomp"}) {
    EXPECT_TRUE(isolation.layers[layer]) << layer;
  }
  EXPECT_TRUE(runner().remaps_paths());
}

} // namespace
} // namespace sandbox::jail::testing

namespace sandbox::jail::testing {
namespace {

// The doctor's pivot_root probe must do what the jail does: where the jail
// runs a job (it pivots onto a fresh root), the probe says pivot_root works.
TEST_F(NamespaceRunnerTest, PivotRootProbeAgreesWithTheJail)
{
  auto result = runner().run(shell("exit 0"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  auto probes = probe_isolation();
  auto it = std::ranges::find_if(probes, [](const LayerProbe& p) { return p.name == "pivot_root"; });
  ASSERT_NE(it, probes.end());
  EXPECT_TRUE(it->works) << it->detail;
}

} // namespace
} // namespace sandbox::jail::testing
