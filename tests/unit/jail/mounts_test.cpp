// The spec -> mount list translation, without processes.

#include "jail/mounts.h"

#include <algorithm>
#include <gtest/gtest.h>

namespace sandbox::jail {
namespace {

const MountOp* find(const MountPlan& plan, const fs::path& target)
{
  auto it = std::ranges::find_if(plan.ops, [&](const MountOp& op) { return op.target == target; });
  return it == plan.ops.end() ? nullptr : &*it;
}

ProcessSpec spec_with_binds()
{
  ProcessSpec spec;
  spec.argv = {"/bin/true"};
  spec.binds = {{"/usr/share", "/sandbox", false}, {fs::temp_directory_path(), "/job", true}};
  return spec;
}

TEST(MountPlan, ToolchainIsReadOnlyAndSymlinksAreCopied)
{
  auto plan = build_mount_plan(spec_with_binds(), {});
  ASSERT_TRUE(plan) << plan.error();
  const MountOp* erlang = find(*plan, "/usr/lib/erlang");
  ASSERT_NE(erlang, nullptr);
  EXPECT_EQ(erlang->kind, MountKind::bind_ro);
  EXPECT_TRUE(erlang->source_is_dir);
  // /usr/bin/erl is a symlink into /usr/lib/erlang on Debian: recreated, not bound.
  if (fs::is_symlink("/usr/bin/erl")) {
    const MountOp* erl = find(*plan, "/usr/bin/erl");
    ASSERT_NE(erl, nullptr);
    EXPECT_EQ(erl->kind, MountKind::symlink);
    EXPECT_EQ(erl->source, fs::read_symlink("/usr/bin/erl"));
  }
  if (fs::is_symlink("/bin")) {
    const MountOp* bin = find(*plan, "/bin");
    ASSERT_NE(bin, nullptr);
    EXPECT_EQ(bin->kind, MountKind::symlink);
  }
  // Never the whole of /usr or /etc.
  EXPECT_EQ(find(*plan, "/usr")->kind, MountKind::dir);
  EXPECT_EQ(find(*plan, "/etc")->kind, MountKind::dir);
  EXPECT_EQ(find(*plan, "/etc/shadow"), nullptr);
}

TEST(MountPlan, BindsSpecialFilesystemsAndGeneratedEtc)
{
  auto plan = build_mount_plan(spec_with_binds(), {});
  ASSERT_TRUE(plan) << plan.error();
  EXPECT_EQ(find(*plan, "/sandbox")->kind, MountKind::bind_ro);
  EXPECT_EQ(find(*plan, "/sandbox")->source, fs::canonical("/usr/share"));
  EXPECT_EQ(find(*plan, "/job")->kind, MountKind::bind_rw);
  EXPECT_EQ(find(*plan, "/proc")->kind, MountKind::proc);
  const MountOp* tmp = find(*plan, "/tmp");
  ASSERT_NE(tmp, nullptr);
  EXPECT_EQ(tmp->kind, MountKind::tmpfs);
  EXPECT_NE(tmp->data.find("size=67108864"), std::string::npos);
  EXPECT_NE(tmp->data.find("nr_inodes="), std::string::npos);
  EXPECT_EQ(find(*plan, "/dev/null")->kind, MountKind::dev_bind);
  EXPECT_EQ(find(*plan, "/dev/fd")->source, "/proc/self/fd");
  const MountOp* passwd = find(*plan, "/etc/passwd");
  ASSERT_NE(passwd, nullptr);
  EXPECT_NE(passwd->data.find("sandbox:x:1000:1000::/job:"), std::string::npos);
  // The user's binds come after everything else.
  EXPECT_EQ(plan->ops.back().target, "/job");
}

TEST(MountPlan, RejectsBadInsidePaths)
{
  for (const char* inside :
       {"relative", "/a/../b", "/", "/proc/x", "/dev", "/etc/passwd", "/usr/lib/erlang/lib"}) {
    ProcessSpec spec;
    spec.binds = {{"/usr/share", inside, false}};
    EXPECT_FALSE(build_mount_plan(spec, {})) << inside;
  }
  ProcessSpec missing;
  missing.binds = {{"/no/such/dir", "/sandbox", false}};
  EXPECT_FALSE(build_mount_plan(missing, {}));
}

TEST(MountPlan, MissingToolchainPartsAreSkipped)
{
  MountOptions options;
  options.toolchain = {"/no/such/toolchain", "/usr/lib/erlang"};
  auto plan = build_mount_plan({}, options);
  ASSERT_TRUE(plan);
  EXPECT_EQ(find(*plan, "/no/such/toolchain"), nullptr);
  EXPECT_NE(find(*plan, "/usr/lib/erlang"), nullptr);
}

TEST(MountPlan, ASpecsToolchainPathsReplaceTheRunnersDefault)
{
  MountOptions options;
  options.toolchain = {"/usr/lib/erlang"};
  ProcessSpec spec;
  spec.toolchain_paths = std::vector<fs::path>{"/usr/bin/env"};
  auto plan = build_mount_plan(spec, options);
  ASSERT_TRUE(plan);
  EXPECT_EQ(find(*plan, "/usr/lib/erlang"), nullptr);
  EXPECT_NE(find(*plan, "/usr/bin/env"), nullptr);
}

// A toolchain installed under the host's /tmp is bound inside the job's /tmp
// tmpfs, not hidden by it: the tmpfs comes first in the plan.
TEST(MountPlan, AToolchainUnderTmpIsBoundInsideTheJobsTmp)
{
  char pattern[] = "/tmp/sandbox-mount-toolchain-XXXXXX";
  fs::path dir = ::mkdtemp(pattern);
  ProcessSpec spec;
  spec.toolchain_paths = std::vector<fs::path>{dir};
  auto plan = build_mount_plan(spec, {});
  fs::remove(dir);
  ASSERT_TRUE(plan);
  std::ptrdiff_t tmpfs = -1;
  std::ptrdiff_t bind = -1;
  for (std::size_t i = 0; i < plan->ops.size(); ++i) {
    const auto& op = plan->ops[i];
    if (op.kind == MountKind::tmpfs && op.target == "/tmp") {
      tmpfs = static_cast<std::ptrdiff_t>(i);
    }
    if (op.kind == MountKind::bind_ro && op.target == dir) {
      bind = static_cast<std::ptrdiff_t>(i);
    }
  }
  ASSERT_GE(tmpfs, 0);
  ASSERT_GE(bind, 0);
  EXPECT_LT(tmpfs, bind);
}

TEST(MountPlan, TheSystemBaseHoldsNoErlangOrElixir)
{
  for (const auto& path : MountOptions::system_base()) {
    auto text = path.string();
    EXPECT_EQ(text.find("erl"), std::string::npos) << text;
    EXPECT_EQ(text.find("elixir"), std::string::npos) << text;
    EXPECT_EQ(text.find("mix"), std::string::npos) << text;
  }
  auto defaults = MountOptions::default_toolchain();
  for (const char* expected : {"/usr/lib/erlang", "/usr/lib/elixir", "/usr/bin/elixir"}) {
    EXPECT_NE(std::find(defaults.begin(), defaults.end(), fs::path(expected)), defaults.end()) << expected;
  }
}

TEST(MountPlan, PreparedStringsPointIntoOldAndNewRoot)
{
  auto plan = build_mount_plan(spec_with_binds(), {});
  ASSERT_TRUE(plan);
  PreparedMounts prepared(*plan);
  ASSERT_EQ(prepared.ops().size(), plan->ops.size());
  auto it = std::ranges::find_if(prepared.ops(), [](const RawMountOp& op) {
    return std::string_view(op.target) == "/newroot/sandbox";
  });
  ASSERT_NE(it, prepared.ops().end());
  EXPECT_EQ(std::string_view(it->source), "/oldroot" + fs::canonical("/usr/share").string());
}

} // namespace
} // namespace sandbox::jail
