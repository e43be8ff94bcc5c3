#include "jail/process.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <thread>

namespace sandbox::jail {
namespace {

ProcessSpec shell(const std::string& script)
{
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.cwd = "/";
  spec.limits.wall_timeout_ms = 10'000;
  return spec;
}

TEST(GroupRunner, CapturesStdoutAndStderrAndExitCode)
{
  GroupRunner runner;
  auto result = runner.run(shell("echo out; echo err >&2; exit 3"));
  EXPECT_EQ(result.verdict, Verdict::exited);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_NE(result.output.find("out\n"), std::string::npos);
  EXPECT_NE(result.output.find("err\n"), std::string::npos);
}

TEST(GroupRunner, PassesOnlyTheGivenEnvironment)
{
  ::setenv("SANDBOX_GROUP_RUNNER_SECRET", "leak", 1);
  GroupRunner runner;
  auto spec = shell("env");
  spec.env.push_back("ONLY_THIS=1");
  auto result = runner.run(spec);
  ASSERT_EQ(result.verdict, Verdict::exited);
  EXPECT_NE(result.output.find("ONLY_THIS=1"), std::string::npos);
  EXPECT_EQ(result.output.find("SANDBOX_GROUP_RUNNER_SECRET"), std::string::npos);
  ::unsetenv("SANDBOX_GROUP_RUNNER_SECRET");
}

TEST(GroupRunner, WallTimeoutKillsTheWholeGroup)
{
  GroupRunner runner;
  auto pid_file = std::filesystem::temp_directory_path() /
                  ("group-runner-" + std::to_string(::getpid()) + ".pid");
  auto spec = shell("sleep 1000 & echo $! > " + pid_file.string() + "; wait");
  spec.limits.wall_timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  auto result = runner.run(spec);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.verdict, Verdict::wall_timeout);
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  std::ifstream in(pid_file);
  pid_t child = 0;
  in >> child;
  ASSERT_GT(child, 0);
  // The background sleep was in the job's group: it must be gone (or a zombie
  // about to be reaped by init).
  bool alive = true;
  for (int i = 0; i < 50 && alive; ++i) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    alive = static_cast<bool>(stat >> pid >> comm >> state) && state != "Z";
    if (alive) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_FALSE(alive);
  std::filesystem::remove(pid_file);
}

TEST(GroupRunner, OutputCapEndsTheJobWithBoundedOutput)
{
  GroupRunner runner;
  auto spec = shell("yes flood");
  spec.limits.output_cap_bytes = 64 * 1024;
  auto result = runner.run(spec);
  EXPECT_EQ(result.verdict, Verdict::output_limit);
  EXPECT_TRUE(result.output_truncated);
  EXPECT_LE(result.output.size(), spec.limits.output_cap_bytes);
}

TEST(GroupRunner, MissingProgramIsASetupFailureNotAnExitCode)
{
  GroupRunner runner;
  ProcessSpec spec;
  spec.argv = {"/nonexistent/compiler"};
  spec.cwd = "/";
  auto result = runner.run(spec);
  EXPECT_EQ(result.verdict, Verdict::setup_failure);
  EXPECT_EQ(result.setup_stage, "execve");
  EXPECT_NE(result.setup_error.find("No such file"), std::string::npos);
}

TEST(GroupRunner, SignalIsReportedAsSignaled)
{
  GroupRunner runner;
  auto result = runner.run(shell("kill -SEGV $$"));
  EXPECT_EQ(result.verdict, Verdict::signaled);
  EXPECT_EQ(result.signal, SIGSEGV);
}

TEST(GroupRunner, DoesNotRemapPaths)
{
  GroupRunner runner;
  EXPECT_FALSE(runner.remaps_paths());
  EXPECT_EQ(runner.isolation().mode, "process_group");
  EXPECT_FALSE(runner.isolation().layers.at("user_ns"));
}

} // namespace
} // namespace sandbox::jail
