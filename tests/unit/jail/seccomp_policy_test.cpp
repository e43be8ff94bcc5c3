// The seccomp rule table and its compilation, without processes.

#include "jail/seccomp_policy.h"

#include <sys/socket.h>

#include <algorithm>
#include <gtest/gtest.h>

namespace sandbox::jail {
namespace {

std::vector<SeccompRule> rules_for(const std::string& name)
{
  std::vector<SeccompRule> found;
  for (auto& rule : seccomp_rules()) {
    if (rule.syscall == name) {
      found.push_back(rule);
    }
  }
  return found;
}

TEST(SeccompPolicy, SocketsOtherThanUnixAreEperm)
{
  for (const char* call : {"socket", "socketpair"}) {
    auto rules = rules_for(call);
    ASSERT_EQ(rules.size(), 1u) << call;
    EXPECT_EQ(rules[0].action, SeccompAction::deny_eperm);
    ASSERT_EQ(rules[0].conditions.size(), 1u);
    EXPECT_EQ(rules[0].conditions[0].op, ArgCondition::Op::not_equal);
    EXPECT_EQ(rules[0].conditions[0].value, static_cast<std::uint64_t>(AF_UNIX));
  }
}

TEST(SeccompPolicy, EveryListedCallIsCovered)
{
  for (const char* call : {"ptrace",
                           "process_vm_readv",
                           "process_vm_writev",
                           "keyctl",
                           "add_key",
                           "request_key",
                           "bpf",
                           "perf_event_open",
                           "userfaultfd",
                           "io_uring_setup",
                           "io_uring_enter",
                           "io_uring_register",
                           "mount",
                           "umount2",
                           "pivot_root",
                           "move_mount",
                           "open_tree",
                           "fsopen",
                           "fsmount",
                           "fsconfig",
                           "fspick",
                           "unshare",
                           "setns",
                           "open_by_handle_at"}) {
    auto rules = rules_for(call);
    ASSERT_EQ(rules.size(), 1u) << call;
    EXPECT_EQ(rules[0].action, SeccompAction::deny_eperm) << call;
    EXPECT_TRUE(rules[0].conditions.empty()) << call;
  }
  for (const char* call : {"kexec_load", "kexec_file_load", "init_module", "finit_module",
                           "delete_module", "reboot", "swapon", "swapoff"}) {
    auto rules = rules_for(call);
    ASSERT_EQ(rules.size(), 1u) << call;
    EXPECT_EQ(rules[0].action, SeccompAction::kill_process) << call;
  }
  ASSERT_EQ(rules_for("clone3").size(), 1u);
  EXPECT_EQ(rules_for("clone3")[0].action, SeccompAction::deny_enosys);
  EXPECT_EQ(rules_for("ioctl").size(), 2u); // TIOCSTI, TIOCLINUX
  EXPECT_EQ(rules_for("clone").size(), 7u); // one per namespace flag
  EXPECT_TRUE(rules_for("memfd_create").empty());
  EXPECT_TRUE(rules_for("execve").empty());
}

TEST(SeccompPolicy, Compiles)
{
  auto program = compile_seccomp(seccomp_rules());
  ASSERT_TRUE(program) << program.error();
  EXPECT_GT(program->size(), 20u);
  EXPECT_EQ(program->program()->len, program->size());
  SeccompProgram moved = std::move(*program);
  EXPECT_EQ(moved.program()->len, moved.size());
}

TEST(SeccompPolicy, UnknownSyscallNamesAreSkipped)
{
  auto program = compile_seccomp({{"no_such_call", SeccompAction::deny_eperm, {}, ""}});
  EXPECT_TRUE(program);
}

} // namespace
} // namespace sandbox::jail
