// The isolation probes report every layer with a reason.

#include "jail/probe.h"

#include <algorithm>
#include <gtest/gtest.h>

namespace sandbox::jail {
namespace {

TEST(Probe, ReportsEveryLayer)
{
  auto probes = probe_isolation();
  for (const char* name : {"user_ns", "pid_ns", "mount_ns", "net_ns", "ipc_ns", "uts_ns",
                           "cgroup_ns", "seccomp", "pivot_root"}) {
    auto it = std::ranges::find_if(probes, [&](const LayerProbe& p) { return p.name == name; });
    ASSERT_NE(it, probes.end()) << name;
    EXPECT_FALSE(it->detail.empty()) << name;
    if (!it->works) {
      EXPECT_NE(it->detail.find("failed"), std::string::npos) << it->detail;
    }
  }
}

TEST(Probe, JailSupportedMatchesTheProbes)
{
  auto probes = probe_isolation();
  bool expected = std::ranges::all_of(probes, [](const LayerProbe& p) {
    return p.works || (p.name != "user_ns" && p.name != "mount_ns" && p.name != "pid_ns" &&
                       p.name != "seccomp");
  });
  EXPECT_EQ(jail_supported(), expected);
}

} // namespace
} // namespace sandbox::jail
