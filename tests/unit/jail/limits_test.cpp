// Every limit ends the job with its own verdict and leaves nothing behind.

#include "jail_test_support.h"

#include <signal.h>
#include <sys/wait.h>

#include <fstream>

namespace sandbox::jail::testing {
namespace {

using LimitsTest = JailTest;

// True when some host process has `marker` in its command line.
bool process_with_marker(const std::string& marker)
{
  for (int pid : util::list_pids()) {
    // A process may exit while we look: its cmdline reads as empty.
    std::string cmdline = util::read_proc_file(pid, "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos && cmdline.find("/bin/sh") == std::string::npos) {
      return true;
    }
  }
  return false;
}

TEST_F(LimitsTest, ForkBombIsProcessLimit)
{
  // Without &: every level waits for its two children, so the job can only
  // end by running out of processes (a backgrounded bomb may return first).
  auto job_spec = shell("b() { b | b; }; b");
  job_spec.limits.max_processes = 20;
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::process_limit) << describe(result);
  EXPECT_GE(result.limit_reading, 20.0);
}

TEST_F(LimitsTest, MemoryHogIsMemoryLimit)
{
  auto hog = compile_helper("hog", R"(
#include <stdlib.h>
#include <string.h>
int main(void) {
  for (;;) { char* p = malloc(1 << 20); if (!p) return 3; memset(p, 1, 1 << 20); }
})");
  auto job_spec = spec({hog});
  job_spec.limits.memory_bytes = 64ull << 20;
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::memory_limit) << describe(result);
  EXPECT_GE(result.limit_reading, 48.0 * (1 << 20));
  EXPECT_GE(result.usage.peak_memory_bytes, 48ull << 20);
}

TEST_F(LimitsTest, InfiniteLoopIsWallTimeout)
{
  auto job_spec = shell("while :; do :; done");
  job_spec.limits.wall_timeout_ms = 600;
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::wall_timeout) << describe(result);
  EXPECT_GE(result.usage.wall_time_ms, 600);
  EXPECT_LT(result.usage.wall_time_ms, 5000);
}

TEST_F(LimitsTest, InfiniteLoopIsCpuTimeLimitWhenSet)
{
  // Two spinning processes: the CPU of the whole tree counts.
  auto job_spec = shell("while :; do :; done & while :; do :; done");
  job_spec.limits.cpu_time_ms = 300;
  job_spec.limits.cpu_percent = 0; // no quota, so the limit comes quickly
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::cpu_time_limit) << describe(result);
  EXPECT_GE(result.usage.cpu_time_ms, 300);
}

TEST_F(LimitsTest, CpuQuotaSlowsTheJob)
{
  auto job_spec = shell("while :; do :; done");
  job_spec.limits.wall_timeout_ms = 1000;
  job_spec.limits.cpu_percent = 10; // of the machine
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::wall_timeout) << describe(result);
  if (!runner().cgroup_layout() || !runner().cgroup_layout()->parent_for("cpu")) {
    GTEST_SKIP() << "no cpu controller";
  }
  unsigned ncpus = std::max(1u, std::thread::hardware_concurrency());
  // 10% of the machine for ~1 s is at most ~100 ms * ncpus of CPU (plus a period of slack).
  EXPECT_LE(result.usage.cpu_time_ms, 100 * static_cast<int>(ncpus) + 150);
}

TEST_F(LimitsTest, DaemonIsKilledAtTheEnd)
{
  std::string marker = "98765" + std::to_string(::getpid()) + ".5";
  auto result = runner().run(
      shell("setsid sh -c 'sleep " + marker + " & echo started' > /job/log; echo parent done"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.output, "parent done\n");
  std::ifstream log(job() / "log");
  std::string line;
  std::getline(log, line);
  EXPECT_EQ(line, "started");
  EXPECT_FALSE(process_with_marker(marker));
}

TEST_F(LimitsTest, OutputFloodIsOutputLimit)
{
  auto job_spec = shell("cat /dev/zero");
  job_spec.limits.output_cap_bytes = 256 * 1024;
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::output_limit) << describe(result);
  EXPECT_EQ(result.output.size(), 256u * 1024);
  EXPECT_TRUE(result.output_truncated);
}

TEST_F(LimitsTest, KillAllInsideSparesHostProcesses)
{
  // A canary with the jail's host uid: only the pid namespace protects it.
  pid_t canary = ::fork();
  ASSERT_GE(canary, 0);
  if (canary == 0) {
    if (::setgid(60000) != 0 || ::setuid(60000) != 0) {
      ::_exit(1);
    }
    ::execl("/usr/bin/sleep", "sleep", "30", nullptr);
    ::_exit(1);
  }
  // kill(-1) reaches every process of the namespace but the caller and init.
  auto result = runner().run(shell("sleep 100 & kill -9 -1; wait; echo survived"));
  EXPECT_EQ(::kill(canary, 0), 0);
  int status = 0;
  EXPECT_EQ(::waitpid(canary, &status, WNOHANG), 0) << "the canary died";
  ::kill(canary, SIGKILL);
  ::waitpid(canary, &status, 0);
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.output, "survived\n");
}

TEST_F(LimitsTest, JailDiesWithTheEngineAndItsCgroupIsRemovedLater)
{
  std::string marker = "87654" + std::to_string(::getpid()) + ".5";
  pid_t engine = ::fork();
  ASSERT_GE(engine, 0);
  if (engine == 0) {
    NamespaceRunnerOptions options;
    options.mounts.toolchain.push_back("/usr/bin/sleep");
    NamespaceRunner child_runner(options);
    ProcessSpec job_spec = shell("sleep " + marker);
    child_runner.run(job_spec);
    ::_exit(0);
  }
  // Generous waits: under a loaded ctest -j2 a jail takes a while to start.
  for (int i = 0; i < 500 && !process_with_marker(marker); ++i) {
    ::usleep(20'000);
  }
  ASSERT_TRUE(process_with_marker(marker)) << "the job never started";
  ::kill(engine, SIGKILL);
  ::waitpid(engine, nullptr, 0);
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = !process_with_marker(marker);
    ::usleep(10'000);
  }
  EXPECT_TRUE(gone) << "the jail outlived its engine";
  // The dead engine's job cgroups are stale: the next runner removes them
  // (or another engine starting at the same time already did).
  NamespaceRunner next;
  if (next.cgroup_layout()) {
    runner(); // the fixture's runner, for leftover_cgroups
    EXPECT_EQ(leftover_cgroups(engine), "");
  }
}

TEST_F(LimitsTest, MonitorWarnsNearTheMemoryLimit)
{
  auto hold = compile_helper("hold", R"(
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
  volatile char* p = malloc(56 << 20);
  for (int i = 0; i < (56 << 20); i += 4096) p[i] = 1;
  usleep(600000);
  return p[4096] - 1;
})");
  auto job_spec = spec({hold});
  job_spec.limits.memory_bytes = 64ull << 20;
  auto result = runner().run(job_spec);
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  ASSERT_FALSE(result.warnings.empty());
  EXPECT_NE(result.warnings.front().find("memory at"), std::string::npos)
      << result.warnings.front();
  bool violation = std::ranges::any_of(
      result.warnings, [](const std::string& w) { return w.starts_with("violation: memory"); });
  EXPECT_TRUE(violation);
}

} // namespace
} // namespace sandbox::jail::testing
