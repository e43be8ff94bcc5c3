// GroupRunner: fork/exec into a new process group, supervise with a pidfd and
// poll, kill the whole group at the end. The child between fork and exec only
// makes async-signal-safe calls and reports failure through a pipe.

#include "jail/cancel.h"
#include "jail/process.h"
#include "util/fd.h"
#include "util/time.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sandbox::jail {

namespace {

using util::Fd;

struct ChildFailure {
  int stage; // index into kStageNames
  int error;
};

constexpr const char* kStageNames[] = {"setpgid", "pdeathsig", "dup2", "chdir", "execve"};

[[noreturn]] void child_fail(int report_fd, int stage)
{
  ChildFailure failure{stage, errno};
  ssize_t ignored = ::write(report_fd, &failure, sizeof failure);
  (void)ignored;
  ::_exit(127);
}

int pidfd_open(pid_t pid)
{
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

} // namespace

ProcessResult GroupRunner::run(const ProcessSpec& spec)
{
  ProcessResult result;
  util::Stopwatch clock;
  if (spec.argv.empty()) {
    result.setup_stage = "spec";
    result.setup_error = "empty argv";
    return result;
  }

  // Everything the child needs is built before fork: it must not allocate.
  auto argv = exec_array(spec.argv);
  auto envp = exec_array(spec.env);
  std::string cwd = spec.cwd.string();

  int out_pipe[2];
  int report_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.setup_stage = "pipe";
    result.setup_error = std::strerror(errno);
    return result;
  }
  Fd out_read(out_pipe[0]);
  Fd out_write(out_pipe[1]);
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) {
    result.setup_stage = "pipe";
    result.setup_error = std::strerror(errno);
    return result;
  }
  Fd report_read(report_pipe[0]);
  Fd report_write(report_pipe[1]);
  Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));

  // Orphans of the job (setsid, double fork) are re-parented to the engine
  // rather than to init, so they can be found and killed at the end.
  static const bool subreaper = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  (void)subreaper;

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    result.setup_stage = "fork";
    result.setup_error = std::strerror(errno);
    return result;
  }
  if (pid == 0) {
    int report = report_write.get();
    if (::setpgid(0, 0) != 0) {
      child_fail(report, 0);
    }
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
      child_fail(report, 1);
    }
    if (::getppid() != parent) {
      ::_exit(127); // the engine died before the prctl took effect
    }
    if (::dup2(dev_null.get(), 0) < 0 || ::dup2(out_write.get(), 1) < 0 ||
        ::dup2(out_write.get(), 2) < 0) {
      child_fail(report, 2);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      child_fail(report, 3);
    }
    // Only 0, 1, 2 and the close-on-exec report pipe survive to exec.
    if (report > 3) {
      ::close_range(3, static_cast<unsigned>(report - 1), 0);
    }
    ::close_range(static_cast<unsigned>(report + 1), ~0u, 0);
    struct rlimit core_limit {0, 0};
    ::setrlimit(RLIMIT_CORE, &core_limit);
    ::execve(argv[0], argv.data(), envp.data());
    child_fail(report, 4);
  }
  // Make sure the group exists before we may signal it (the child may not have run yet).
  ::setpgid(pid, pid);
  ChildRegistration registration(pid);
  out_write.reset();
  report_write.reset();
  dev_null.reset();

  ChildFailure failure{};
  ssize_t got;
  do {
    got = ::read(report_read.get(), &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    ::waitpid(pid, nullptr, 0);
    result.setup_stage = kStageNames[failure.stage];
    result.setup_error = std::string(std::strerror(failure.error)) + " (" + spec.argv[0] + ")";
    return result;
  }

  Fd pidfd(pidfd_open(pid));
  if (!pidfd) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    result.setup_stage = "pidfd_open";
    result.setup_error = std::strerror(errno);
    return result;
  }
  const auto deadline =
    util::Clock::now() + std::chrono::milliseconds(spec.limits.wall_timeout_ms);
  util::Clock::time_point drain_deadline{};
  bool timed_out = false;
  bool output_flooded = false;
  bool output_open = true;
  bool exited = false;
  char buffer[65536];
  auto kill_group = [&] { ::kill(-pid, SIGKILL); };

  while (true) {
    auto now = util::Clock::now();
    if (!exited && !timed_out && (now >= deadline || cancellation_requested())) {
      timed_out = true;
      kill_group();
    }
    if (exited && (!output_open || now >= drain_deadline)) {
      break;
    }
    auto until = exited ? drain_deadline : (timed_out ? now + std::chrono::milliseconds(100) : deadline);
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    wait_ms = std::clamp<std::int64_t>(wait_ms, 0, 100);

    pollfd fds[2];
    nfds_t nfds = 0;
    int out_index = -1;
    int pid_index = -1;
    if (output_open) {
      out_index = static_cast<int>(nfds);
      fds[nfds++] = {out_read.get(), POLLIN, 0};
    }
    if (!exited) {
      pid_index = static_cast<int>(nfds);
      fds[nfds++] = {pidfd.get(), POLLIN, 0};
    }
    int ready = ::poll(fds, nfds, static_cast<int>(wait_ms));
    if (ready < 0 && errno != EINTR) {
      kill_group();
    }
    if (ready > 0 && out_index >= 0 && (fds[out_index].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(out_read.get(), buffer, sizeof buffer);
      if (n > 0) {
        std::size_t cap = spec.limits.output_cap_bytes;
        std::size_t room = cap > result.output.size() ? cap - result.output.size() : 0;
        std::size_t take = std::min(room, static_cast<std::size_t>(n));
        result.output.append(buffer, take);
        if (take < static_cast<std::size_t>(n)) {
          result.output_truncated = true;
          if (!output_flooded && !exited) {
            output_flooded = true;
            kill_group();
          }
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        output_open = false;
      }
    }
    if (ready > 0 && pid_index >= 0 && (fds[pid_index].revents & POLLIN)) {
      int status = 0;
      struct rusage usage {};
      if (::wait4(pid, &status, 0, &usage) == pid) {
        exited = true;
        // Nothing of the job outlives its main process.
        kill_group();
        drain_deadline = util::Clock::now() + std::chrono::milliseconds(200);
        auto tv_ms = [](const timeval& tv) {
          return static_cast<std::int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
        };
        result.usage.cpu_time_ms = tv_ms(usage.ru_utime) + tv_ms(usage.ru_stime);
        result.usage.peak_memory_bytes = static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;
        if (WIFEXITED(status)) {
          result.exit_code = WEXITSTATUS(status);
          result.verdict = Verdict::exited;
        } else if (WIFSIGNALED(status)) {
          result.signal = WTERMSIG(status);
          result.verdict =
            WTERMSIG(status) == SIGSYS ? Verdict::seccomp_violation : Verdict::signaled;
        }
      }
    }
  }
  // Whatever left the group (its own session, a daemon) is now the engine's
  // orphan: nothing of the job outlives it.
  kill_orphaned_children();
  if (timed_out) {
    result.verdict = Verdict::wall_timeout;
  } else if (output_flooded) {
    result.verdict = Verdict::output_limit;
  }
  result.usage.wall_time_ms = clock.elapsed_ms();
  return result;
}

Isolation GroupRunner::isolation() const
{
  Isolation isolation;
  isolation.mode = "process_group";
  for (const char* layer : {"user_ns", "pid_ns", "mount_ns", "net_ns", "ipc_ns", "uts_ns",
                            "cgroup_ns", "seccomp", "cgroup", "no_new_privs"}) {
    isolation.layers[layer] = false;
  }
  isolation.layers["process_group"] = true;
  isolation.enforced_limits = {"timeout", "output_cap"};
  return isolation;
}

} // namespace sandbox::jail
