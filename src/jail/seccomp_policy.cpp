// The seccomp policy table and its compilation with libseccomp. The action
// per rule: EPERM where a well-behaved program may try the call and cope with
// a refusal (BEAM's :gen_tcp.connect returns {:error, :eperm} instead of the
// VM dying), ENOSYS for clone3 (its flags live in memory a filter cannot
// read, so libc must fall back to clone), and kill for calls no compiler has
// a reason to make (kexec, modules, reboot, swap): those are an attack and end
// the job with Verdict::seccomp_violation.

#include "jail/seccomp_policy.h"

#include "util/fd.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace sandbox::jail {

std::string_view to_string(SeccompAction action)
{
  switch (action) {
  case SeccompAction::allow: return "allow";
  case SeccompAction::deny_eperm: return "EPERM";
  case SeccompAction::deny_enosys: return "ENOSYS";
  case SeccompAction::kill_process: return "kill";
  }
  return "?";
}

std::vector<SeccompRule> seccomp_rules()
{
  using Op = ArgCondition::Op;
  std::vector<SeccompRule> rules;
  auto deny = [&](const char* name, const char* why) {
    rules.push_back({name, SeccompAction::deny_eperm, {}, why});
  };
  auto kill = [&](const char* name, const char* why) {
    rules.push_back({name, SeccompAction::kill_process, {}, why});
  };

  // Network: only local (AF_UNIX) sockets; the net namespace has no route
  // anyway, this also closes netlink and raw sockets to the kernel.
  for (const char* call : {"socket", "socketpair"}) {
    rules.push_back({call,
                     SeccompAction::deny_eperm,
                     {{.index = 0, .op = Op::not_equal, .value = AF_UNIX}},
                     "only AF_UNIX sockets (erl_child_setup uses a socketpair)"});
  }
  deny("ptrace", "no debugging or memory access of other processes");
  deny("process_vm_readv", "no reading another process's memory");
  deny("process_vm_writev", "no writing another process's memory");
  deny("pidfd_getfd", "no stealing file descriptors from other processes");
  deny("keyctl", "the kernel keyring is not namespaced");
  deny("add_key", "the kernel keyring is not namespaced");
  deny("request_key", "the kernel keyring is not namespaced");
  deny("bpf", "large kernel attack surface");
  deny("perf_event_open", "side channels and kernel attack surface");
  deny("userfaultfd", "used to widen kernel race windows in exploits");
  deny("io_uring_setup", "bypasses the syscall filter and has a history of exploits");
  deny("io_uring_enter", "bypasses the syscall filter");
  deny("io_uring_register", "bypasses the syscall filter");
  for (const char* call : {"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
                           "fsmount", "fsconfig", "fspick", "mount_setattr"}) {
    deny(call, "the jail's file system is fixed once it starts");
  }
  deny("unshare", "no new namespaces: their owner gets capabilities inside them");
  deny("setns", "no entering other namespaces");
  deny("open_by_handle_at", "can open files outside the mount tree (shocker)");
  deny("syslog", "the kernel log is not namespaced");
  deny("acct", "host-wide process accounting");
  // clone with any namespace flag; each flag its own rule (rules of the same
  // call and action are OR-ed).
  for (std::uint64_t flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC,
                             CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    rules.push_back({"clone",
                     SeccompAction::deny_eperm,
                     {{.index = 0, .op = Op::masked_equal, .value = flag, .mask = flag}},
                     "no new namespaces"});
  }
  rules.push_back({"clone3",
                   SeccompAction::deny_enosys,
                   {},
                   "flags are behind a pointer; ENOSYS makes libc fall back to clone"});
  for (unsigned long request :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
    rules.push_back({"ioctl",
                     SeccompAction::deny_eperm,
                     {{.index = 1, .op = Op::masked_equal, .value = request, .mask = 0xffffffffu}},
                     "no injecting input into a terminal"});
  }
  kill("kexec_load", "replacing the kernel");
  kill("kexec_file_load", "replacing the kernel");
  kill("init_module", "loading kernel code");
  kill("finit_module", "loading kernel code");
  kill("delete_module", "unloading kernel code");
  kill("reboot", "rebooting the machine");
  kill("swapon", "host memory configuration");
  kill("swapoff", "host memory configuration");
  return rules;
}

namespace {

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

std::uint32_t libseccomp_action(SeccompAction action)
{
  switch (action) {
  case SeccompAction::allow: return SCMP_ACT_ALLOW;
  case SeccompAction::deny_eperm: return SCMP_ACT_ERRNO(EPERM);
  case SeccompAction::deny_enosys: return SCMP_ACT_ERRNO(ENOSYS);
  case SeccompAction::kill_process: return SCMP_ACT_KILL_PROCESS;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_arg_cmp libseccomp_condition(const ArgCondition& condition)
{
  switch (condition.op) {
  case ArgCondition::Op::equal: return SCMP_CMP(condition.index, SCMP_CMP_EQ, condition.value);
  case ArgCondition::Op::not_equal: return SCMP_CMP(condition.index, SCMP_CMP_NE, condition.value);
  case ArgCondition::Op::masked_equal:
    return SCMP_CMP(condition.index, SCMP_CMP_MASKED_EQ, condition.mask, condition.value);
  }
  return SCMP_CMP(condition.index, SCMP_CMP_EQ, condition.value);
}

} // namespace

std::expected<SeccompProgram, std::string> compile_seccomp(const std::vector<SeccompRule>& rules)
{
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    return std::unexpected("seccomp_init failed");
  }
  // Only the native architecture: an i386 or x32 system call (a different
  // syscall table the rules do not cover) kills the process.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc != 0) {
    return std::unexpected(std::string("seccomp bad-arch action: ") + std::strerror(-rc));
  }
  for (const auto& rule : rules) {
    int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) {
      continue;
    }
    std::vector<scmp_arg_cmp> conditions;
    for (const auto& condition : rule.conditions) {
      conditions.push_back(libseccomp_condition(condition));
    }
    int rc = seccomp_rule_add_array(ctx.get(), libseccomp_action(rule.action), nr,
                                    static_cast<unsigned>(conditions.size()), conditions.data());
    if (rc != 0) {
      return std::unexpected("seccomp rule for " + rule.syscall + ": " + std::strerror(-rc));
    }
  }
  util::Fd memfd(::memfd_create("seccomp-bpf", MFD_CLOEXEC));
  if (!memfd) {
    return std::unexpected(std::string("memfd_create: ") + std::strerror(errno));
  }
  if (int rc = seccomp_export_bpf(ctx.get(), memfd.get()); rc != 0) {
    return std::unexpected(std::string("seccomp_export_bpf: ") + std::strerror(-rc));
  }
  off_t size = ::lseek(memfd.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
    return std::unexpected("seccomp_export_bpf wrote an invalid program");
  }
  SeccompProgram program;
  program.m_filter.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(memfd.get(), program.m_filter.data(), static_cast<std::size_t>(size), 0) != size) {
    return std::unexpected(std::string("reading the seccomp program: ") + std::strerror(errno));
  }
  program.m_program = {static_cast<unsigned short>(program.m_filter.size()),
                       program.m_filter.data()};
  return program;
}

bool load_seccomp(const SeccompProgram& program)
{
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, program.program(), 0, 0) == 0;
}

} // namespace sandbox::jail
