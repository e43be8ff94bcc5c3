// The jail's init: pid 1 of the job's pid namespace. Only async-signal-safe
// system calls from here on; no allocation, no exceptions.

#include "jail/jail_child.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sandbox::jail {

namespace {

void report(int fd, ReportKind kind, int stage, int error, int status)
{
  ChildReport record{kind, stage, error, status};
  ssize_t ignored = ::write(fd, &record, sizeof record);
  (void)ignored;
}

[[noreturn]] void fail(const ChildConfig& config, int stage)
{
  report(config.report_fd, ReportKind::setup_failed, stage, errno, 0);
  ::_exit(127);
}

[[noreturn]] void fail(const ChildConfig& config, ChildStage stage)
{
  fail(config, static_cast<int>(stage));
}

// Closes every descriptor from `low` up, except `keep`.
void close_all_but(int keep, int low = 3)
{
  if (keep > low) {
    ::close_range(static_cast<unsigned>(low), static_cast<unsigned>(keep - 1), 0);
  }
  ::close_range(static_cast<unsigned>(keep < low ? low : keep + 1), ~0u, 0);
}

bool set_limit(int resource, rlim_t value)
{
  struct rlimit limit {
    value, value
  };
  return ::setrlimit(resource, &limit) == 0;
}

// Clears effective, permitted and inheritable capabilities with the raw
// system call (libcap allocates).
bool clear_capabilities()
{
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  return ::syscall(SYS_capset, &header, data) == 0;
}

void reset_signals()
{
  sigset_t all;
  ::sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::sigaction(sig, &dfl, nullptr);
    }
  }
}

[[noreturn]] void exec_job(const ChildConfig& given)
{
  ChildConfig config = given;
  // The job: stdin /dev/null, stdout and stderr the engine's pipe, the
  // inherited descriptors at 3, 4, ..., nothing else.
  if (::dup2(config.null_fd, 0) < 0 || ::dup2(config.output_fd, 1) < 0 ||
      ::dup2(config.output_fd, 2) < 0) {
    fail(config, ChildStage::dup2);
  }
  const int first_free = 3 + config.inherit_count;
  if (config.inherit_count > 0 && config.report_fd < first_free) {
    int moved = ::fcntl(config.report_fd, F_DUPFD_CLOEXEC, first_free);
    if (moved < 0) {
      fail(config, ChildStage::dup2);
    }
    config.report_fd = moved;
  }
  for (int i = 0; i < config.inherit_count; ++i) {
    if (::dup2(config.inherit_fds[i], 3 + i) < 0) { // dup2 clears close-on-exec
      fail(config, ChildStage::dup2);
    }
  }
  if (config.cwd != nullptr && config.cwd[0] != '\0' && ::chdir(config.cwd) != 0) {
    fail(config, ChildStage::chdir);
  }
  // The report pipe is close-on-exec: it is the only descriptor besides 0-2
  // and the inherited ones that reaches execve, and only to report its failure.
  close_all_but(config.report_fd, first_free);
  ::execve(config.argv[0], config.argv, config.envp);
  fail(config, ChildStage::execve);
}

} // namespace

const char* child_stage_name(int stage)
{
  if (stage >= kMountStageBase) {
    return mount_stage_name(static_cast<MountStage>(stage - kMountStageBase));
  }
  switch (static_cast<ChildStage>(stage)) {
  case ChildStage::sync: return "sync";
  case ChildStage::pdeathsig: return "pdeathsig";
  case ChildStage::setgroups: return "setgroups";
  case ChildStage::setgid: return "setresgid";
  case ChildStage::setuid: return "setresuid";
  case ChildStage::cgroup_ns: return "unshare_cgroup_ns";
  case ChildStage::hostname: return "sethostname";
  case ChildStage::rlimit: return "setrlimit";
  case ChildStage::capbset: return "capability_bounding_set";
  case ChildStage::capset: return "capset";
  case ChildStage::ambient: return "ambient_capabilities";
  case ChildStage::no_new_privs: return "no_new_privs";
  case ChildStage::seccomp: return "seccomp";
  case ChildStage::fork_job: return "fork";
  case ChildStage::dup2: return "dup2";
  case ChildStage::chdir: return "chdir";
  case ChildStage::execve: return "execve";
  }
  return "setup";
}

void jail_init_main(const ChildConfig& config)
{
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fail(config, ChildStage::pdeathsig);
  }
  // The engine writes the uid/gid maps and moves us into the job cgroups,
  // then sends one byte. EOF means it gave up or died (before PDEATHSIG took
  // effect): leave quietly.
  char go = 0;
  ssize_t got;
  do {
    got = ::read(config.sync_fd, &go, 1);
  } while (got < 0 && errno == EINTR);
  if (got != 1) {
    ::_exit(126);
  }
  reset_signals();

  // Become the job's user first. Our host uid (root) is not mapped in the new
  // user namespace, so changing uids keeps the namespace's capabilities
  // (the kernel clears them only when leaving the namespace's root uid); we
  // need them for the mounts and drop them explicitly below. Files the setup
  // creates are then owned by a mapped uid, as tmpfs requires.
  // Bind sources are opened while we still have the engine's host uid: a
  // source may lie under a directory only the engine can traverse.
  if (!open_bind_sources(config.mounts->ops())) {
    fail(config, kMountStageBase + static_cast<int>(MountStage::bind));
  }
  // Raw system calls: glibc's wrappers apply credential changes to every
  // thread it knows of (the setxid broadcast), and after a raw clone from a
  // multi-threaded engine it would wait forever for threads that do not
  // exist in this process.
  if (config.drop_groups && ::syscall(SYS_setgroups, 0, nullptr) != 0) {
    fail(config, ChildStage::setgroups);
  }
  if (::syscall(SYS_setresgid, config.gid, config.gid, config.gid) != 0) {
    fail(config, ChildStage::setgid);
  }
  if (::syscall(SYS_setresuid, config.uid, config.uid, config.uid) != 0) {
    fail(config, ChildStage::setuid);
  }
  // Changing credentials cleared the parent-death signal: set it again, then
  // make sure the engine did not die in between (it holds the sync pipe's
  // write end open until the job ends, so a hang-up means it is gone).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fail(config, ChildStage::pdeathsig);
  }
  pollfd engine{config.sync_fd, POLLIN, 0};
  if (::poll(&engine, 1, 0) != 0) {
    ::_exit(126);
  }
  ::close(config.sync_fd);
  // Now that we sit in the job's cgroups, make them the root of our view.
  if (config.new_cgroup_ns && ::unshare(CLONE_NEWCGROUP) != 0) {
    fail(config, ChildStage::cgroup_ns);
  }
  MountStage mount_stage{};
  if (!apply_mounts(*config.mounts, config.root_bytes, &mount_stage)) {
    fail(config, kMountStageBase + static_cast<int>(mount_stage));
  }
  close_bind_sources(config.mounts->ops());
  if (::sethostname(config.hostname, std::strlen(config.hostname)) != 0 ||
      ::setdomainname(config.hostname, std::strlen(config.hostname)) != 0) {
    fail(config, ChildStage::hostname);
  }
  if (!set_limit(RLIMIT_CORE, config.core_bytes) || !set_limit(RLIMIT_NOFILE, config.open_files) ||
      !set_limit(RLIMIT_FSIZE, config.file_bytes) || !set_limit(RLIMIT_AS, config.address_space)) {
    fail(config, ChildStage::rlimit);
  }
  for (int cap = 0; cap <= config.cap_last; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      fail(config, ChildStage::capbset);
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    fail(config, ChildStage::ambient);
  }
  if (!clear_capabilities()) {
    fail(config, ChildStage::capset);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    fail(config, ChildStage::no_new_privs);
  }
  // Init itself runs under the filter too: it only forks, waits and kills.
  if (config.seccomp != nullptr && !load_seccomp(*config.seccomp)) {
    fail(config, ChildStage::seccomp);
  }

  // Plain fork semantics without libc's atfork handlers (the engine may have
  // registered some that allocate). clone3 is filtered to ENOSYS by now.
  pid_t job = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, 0));
  if (job < 0) {
    fail(config, ChildStage::fork_job);
  }
  if (job == 0) {
    exec_job(config);
  }
  ::close(config.output_fd);
  ::close(config.null_fd);
  close_all_but(config.report_fd);

  // Reap everything; when the job itself ends, whatever it left behind
  // (daemons, double forks re-parented to us) is killed: nothing outlives it.
  int job_status = 0;
  bool job_done = false;
  while (true) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, __WALL);
    if (pid < 0) {
      if (errno == EINTR) {
        continue;
      }
      break; // ECHILD: the namespace is empty
    }
    if (pid == job) {
      job_status = status;
      job_done = true;
    }
    if (job_done) {
      ::kill(-1, SIGKILL);
    }
  }
  report(config.report_fd, ReportKind::job_status, 0, 0, job_status);
  ::_exit(0);
}

} // namespace sandbox::jail
