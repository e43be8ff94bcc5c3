// Cgroup layout parsing and the limit -> file mapping, without processes.

#include "jail/cgroup.h"

#include <gtest/gtest.h>

namespace sandbox::jail {
namespace {

constexpr const char* kHybridMountinfo =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr const char* kHybridSelf = "9:name=systemd:/\n8:pids:/\n6:freezer:/\n"
                                    "4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n";

TEST(CgroupLayout, ParsesHybrid)
{
  auto layout = parse_cgroup_layout(kHybridMountinfo, kHybridSelf, "");
  EXPECT_EQ(layout.describe(), "hybrid");
  EXPECT_EQ(layout.v1.at("memory"), "/sys/fs/cgroup/memory/process_api/abc");
  EXPECT_EQ(layout.v1.at("pids"), "/sys/fs/cgroup/pids");
  EXPECT_EQ(layout.v1.at("freezer"), "/sys/fs/cgroup/freezer");
  EXPECT_EQ(layout.unified, fs::path("/sys/fs/cgroup/unified"));
  EXPECT_EQ(layout.parent_for("memory"), fs::path("/sys/fs/cgroup/memory/process_api/abc"));
  EXPECT_FALSE(layout.on_v2("memory"));
}

TEST(CgroupLayout, ParsesPureV2WithContainerRoot)
{
  auto layout = parse_cgroup_layout(
      "30 23 0:26 /docker/x /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
      "0::/docker/x/engine\n", "cpu memory pids\n");
  EXPECT_EQ(layout.describe(), "v2");
  EXPECT_EQ(layout.unified, fs::path("/sys/fs/cgroup/engine"));
  EXPECT_TRUE(layout.on_v2("memory"));
  EXPECT_EQ(layout.parent_for("pids"), fs::path("/sys/fs/cgroup/engine"));
  EXPECT_FALSE(layout.parent_for("freezer"));
}

TEST(CgroupLayout, ParsesCoMountedV1)
{
  auto layout = parse_cgroup_layout(
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
      "3:cpu,cpuacct:/user\n2:memory:/user\n", "");
  EXPECT_EQ(layout.describe(), "v1");
  EXPECT_EQ(layout.v1.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct/user");
  EXPECT_EQ(layout.v1.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct/user");
}

TEST(CgroupValues, MapsLimits)
{
  Limits limits;
  limits.memory_bytes = 256ull << 20;
  limits.max_processes = 100;
  limits.cpu_percent = 80;
  auto values = cgroup_values(limits, {}, 2);
  EXPECT_EQ(values.memory_bytes, 256ull << 20);
  EXPECT_EQ(values.pids_max, 100u + 2 * 2 + 32);
  EXPECT_EQ(values.cpu_period_us, 100'000);
  EXPECT_EQ(values.cpu_quota_us, 160'000); // 80% of a 2-core machine

  CgroupTuning tuning;
  tuning.thread_allowance = 0;
  limits.cpu_percent = 0;
  values = cgroup_values(limits, tuning, 4);
  EXPECT_EQ(values.pids_max, 100u);
  EXPECT_EQ(values.cpu_quota_us, -1);
  limits.cpu_percent = 400; // the whole machine: no quota
  EXPECT_EQ(cgroup_values(limits, tuning, 4).cpu_quota_us, -1);
}

TEST(CgroupWrites, V1AndHybrid)
{
  auto layout = parse_cgroup_layout(kHybridMountinfo, kHybridSelf, "");
  CgroupValues values{64ull << 20, 50, 100'000, 50'000};
  auto writes = cgroup_writes(values, layout);
  std::vector<CgroupWrite> expected = {
      {"memory", "memory.limit_in_bytes", "67108864", true},
      {"memory", "memory.memsw.limit_in_bytes", "67108864", false},
      {"pids", "pids.max", "50", true},
      {"cpu", "cpu.cfs_period_us", "100000", true},
      {"cpu", "cpu.cfs_quota_us", "50000", true},
  };
  EXPECT_EQ(writes, expected);
}

TEST(CgroupWrites, V2)
{
  CgroupLayout layout;
  layout.unified = "/sys/fs/cgroup/engine";
  layout.v2_controllers = {"memory", "pids", "cpu"};
  CgroupValues values{64ull << 20, 50, 100'000, -1};
  auto writes = cgroup_writes(values, layout);
  std::vector<CgroupWrite> expected = {
      {"memory", "memory.max", "67108864", true}, {"memory", "memory.swap.max", "0", false},
      {"memory", "memory.oom.group", "1", false}, {"pids", "pids.max", "50", true},
      {"cpu", "cpu.max", "max 100000", true},
  };
  EXPECT_EQ(writes, expected);
}

TEST(CgroupName, HasPrefixPidAndCounter)
{
  EXPECT_EQ(job_cgroup_name(42, 7), "sandbox-job-42-7");
}

TEST(JobCgroupLive, CreateSampleRemove)
{
  auto layout = detect_cgroup_layout();
  if (!layout || (layout->v1.empty() && !layout->unified)) {
    GTEST_SKIP() << "no cgroup hierarchy here";
  }
  CgroupValues values{64ull << 20, 50, 100'000, 50'000};
  auto group = JobCgroup::create(*layout, job_cgroup_name(::getpid(), 999999), values);
  if (!group) {
    GTEST_SKIP() << "cannot create cgroups here: " << group.error();
  }
  auto dirs = group->directories();
  ASSERT_FALSE(dirs.empty());
  for (const auto& dir : dirs) {
    EXPECT_TRUE(fs::is_directory(dir)) << dir;
  }
  auto sample = group->sample();
  EXPECT_EQ(sample.pids, 0u);
  EXPECT_TRUE(group->empty());
  group->remove();
  for (const auto& dir : dirs) {
    EXPECT_FALSE(fs::exists(dir)) << dir;
  }
}

TEST(JobCgroupLive, StaleCgroupsOfDeadEnginesAreRemoved)
{
  auto layout = detect_cgroup_layout();
  if (!layout || !layout->parent_for("pids")) {
    GTEST_SKIP() << "no pids hierarchy here";
  }
  // A pid that cannot be running: beyond pid_max.
  fs::path stale = *layout->parent_for("pids") / job_cgroup_name(999'999'999, 1);
  if (::mkdir(stale.c_str(), 0755) != 0) {
    GTEST_SKIP() << "cannot create cgroups here";
  }
  auto removed = remove_stale_cgroups(*layout);
  EXPECT_NE(std::ranges::find(removed, stale), removed.end());
  EXPECT_FALSE(fs::exists(stale));
}

} // namespace
} // namespace sandbox::jail
