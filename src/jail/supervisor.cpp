// The supervision loop. One poll over the output pipe, the report pipe and
// the init's pidfd, woken at least every monitor interval to sample the
// cgroup. The first limit that fires decides the verdict; the job's own exit
// status decides it only when no limit fired.

#include "jail/supervisor.h"

#include "jail/cancel.h"

#include "jail/jail_child.h"
#include "util/time.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

namespace sandbox::jail {

namespace {

class Monitor {
public:
  Monitor(const Limits& limits, const MonitorSettings& settings, ProcessResult& result)
      : m_limits(limits), m_settings(settings), m_result(result)
  {
  }

  // Records warnings; returns the hard limit that was hit, if any.
  std::optional<Verdict> observe(const CgroupSample& sample, const CgroupSample& baseline)
  {
    m_peak_memory = std::max({m_peak_memory, sample.memory_bytes, sample.memory_peak});
    m_peak_pids = std::max(m_peak_pids, sample.pids);
    check("memory", static_cast<double>(sample.memory_bytes),
          static_cast<double>(m_limits.memory_bytes), "bytes", m_memory_streak);
    check("processes", static_cast<double>(sample.pids), static_cast<double>(m_settings.pids_max),
          "tasks", m_pids_streak);
    if (sample.oom_kills > baseline.oom_kills) {
      return Verdict::memory_limit;
    }
    if (sample.pids_max_hits > baseline.pids_max_hits) {
      return Verdict::process_limit;
    }
    if (m_limits.cpu_time_ms > 0 && sample.cpu_ns >= 0 &&
        sample.cpu_ns / 1'000'000 > m_limits.cpu_time_ms) {
      return Verdict::cpu_time_limit;
    }
    return std::nullopt;
  }

  [[nodiscard]] std::uint64_t peak_memory() const { return m_peak_memory; }
  [[nodiscard]] std::uint64_t peak_pids() const { return m_peak_pids; }

private:
  void check(const char* what, double reading, double limit, const char* unit, int& streak)
  {
    if (limit <= 0 || reading <= m_settings.warn_fraction * limit) {
      streak = 0;
      return;
    }
    ++streak;
    int percent = static_cast<int>(100.0 * reading / limit);
    add(std::string(what) + " at " + std::to_string(percent) + "% of its limit (" +
        std::to_string(static_cast<std::uint64_t>(reading)) + " of " +
        std::to_string(static_cast<std::uint64_t>(limit)) + " " + unit + ")");
    if (streak == m_settings.violation_after) {
      add("violation: " + std::string(what) + " above " +
          std::to_string(static_cast<int>(m_settings.warn_fraction * 100)) + "% of its limit for " +
          std::to_string(streak) + " consecutive samples");
    }
  }

  void add(std::string warning)
  {
    // Bounded, like the output: a job cannot grow the engine's memory.
    if (m_result.warnings.size() < m_settings.max_warnings) {
      m_result.warnings.push_back(std::move(warning));
    } else if (m_result.warnings.size() == m_settings.max_warnings) {
      m_result.warnings.push_back("further warnings omitted");
    }
  }

  const Limits& m_limits;
  const MonitorSettings& m_settings;
  ProcessResult& m_result;
  std::uint64_t m_peak_memory = 0;
  std::uint64_t m_peak_pids = 0;
  int m_memory_streak = 0;
  int m_pids_streak = 0;
};

} // namespace

void supervise(const SupervisedJob& job, const Limits& limits,
               const MonitorSettings& monitor_settings, ProcessResult& result)
{
  const auto start = util::Clock::now();
  const auto deadline = start + std::chrono::milliseconds(limits.wall_timeout_ms);
  const auto interval = std::chrono::milliseconds(std::max(monitor_settings.interval_ms, 10));
  auto next_sample = start + interval;
  util::Clock::time_point drain_deadline{};

  Monitor monitor(limits, monitor_settings, result);
  CgroupSample baseline = job.cgroup ? job.cgroup->sample() : CgroupSample{};
  CgroupSample last = baseline;

  std::optional<Verdict> limit_hit; // the first limit the supervisor acted on
  std::optional<ChildReport> setup_failure;
  std::optional<int> job_status;
  std::optional<int> init_status;
  bool output_open = true;
  bool report_open = true;
  bool stop_open = job.stop_fd >= 0;
  char report_buffer[sizeof(ChildReport) * 8];
  std::size_t report_used = 0;
  static thread_local char buffer[65536];

  auto kill_tree = [&] {
    if (job.cgroup) {
      job.cgroup->kill_all();
    }
    // Killing the namespace's init takes every process of the namespace down.
    ::kill(job.init_pid, SIGKILL);
  };
  auto hit = [&](Verdict verdict) {
    if (!limit_hit && !init_status) {
      limit_hit = verdict;
      kill_tree();
    }
  };

  while (true) {
    auto now = util::Clock::now();
    if (!init_status && (now >= deadline || cancellation_requested())) {
      hit(Verdict::wall_timeout);
    }
    if (job.cgroup && !init_status && now >= next_sample) {
      last = job.cgroup->sample();
      if (auto verdict = monitor.observe(last, baseline)) {
        hit(*verdict);
      }
      next_sample = now + interval;
    }
    if (init_status && ((!output_open && !report_open) || now >= drain_deadline)) {
      break;
    }
    auto until = init_status ? drain_deadline : std::min(deadline, next_sample);
    if (!job.cgroup && !init_status) {
      until = std::min(until, now + interval);
    }
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    wait_ms = std::clamp<std::int64_t>(wait_ms, 0, kCancelPollMs);

    pollfd fds[4];
    nfds_t count = 0;
    int out_index = -1, report_index = -1, pid_index = -1, stop_index = -1;
    if (output_open) {
      out_index = static_cast<int>(count);
      fds[count++] = {job.output_fd, POLLIN, 0};
    }
    if (report_open) {
      report_index = static_cast<int>(count);
      fds[count++] = {job.report_fd, POLLIN, 0};
    }
    if (!init_status) {
      pid_index = static_cast<int>(count);
      fds[count++] = {job.pidfd, POLLIN, 0};
    }
    if (stop_open && !init_status) {
      stop_index = static_cast<int>(count);
      fds[count++] = {job.stop_fd, POLLIN, 0};
    }
    int ready = ::poll(fds, count, static_cast<int>(wait_ms));
    if (ready < 0 && errno != EINTR) {
      kill_tree();
    }
    if (ready <= 0) {
      continue;
    }
    if (out_index >= 0 && (fds[out_index].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::read(job.output_fd, buffer, sizeof buffer);
      if (n > 0) {
        std::size_t cap = limits.output_cap_bytes;
        std::size_t room = cap > result.output.size() ? cap - result.output.size() : 0;
        std::size_t take = std::min(room, static_cast<std::size_t>(n));
        result.output.append(buffer, take);
        if (take < static_cast<std::size_t>(n)) {
          result.output_truncated = true;
          hit(Verdict::output_limit);
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        output_open = false;
      }
    }
    if (report_index >= 0 && (fds[report_index].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n =
          ::read(job.report_fd, report_buffer + report_used, sizeof report_buffer - report_used);
      if (n > 0) {
        report_used += static_cast<std::size_t>(n);
        std::size_t offset = 0;
        for (; offset + sizeof(ChildReport) <= report_used; offset += sizeof(ChildReport)) {
          ChildReport record;
          std::memcpy(&record, report_buffer + offset, sizeof record);
          if (record.kind == ReportKind::setup_failed && !setup_failure) {
            setup_failure = record;
          } else if (record.kind == ReportKind::job_status) {
            job_status = record.status;
          }
        }
        std::memmove(report_buffer, report_buffer + offset, report_used - offset);
        report_used -= offset;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        report_open = false;
      }
    }
    if (stop_index >= 0 && (fds[stop_index].revents & (POLLIN | POLLHUP | POLLERR))) {
      unsigned char reason = 0;
      if (::read(job.stop_fd, &reason, 1) == 1) {
        hit(static_cast<Verdict>(reason));
      } else {
        hit(Verdict::signaled);
      }
      stop_open = false;
    }
    if (pid_index >= 0 && (fds[pid_index].revents & POLLIN)) {
      int status = 0;
      if (::waitpid(job.init_pid, &status, __WALL) == job.init_pid) {
        init_status = status;
        // Output still in the pipe is collected; writers are gone (the pid
        // namespace died with its init), so EOF follows quickly.
        drain_deadline = util::Clock::now() + std::chrono::milliseconds(500);
      }
    }
  }

  if (job.cgroup) {
    // Everything in the namespace died with init; wait for the kernel to
    // finish tearing the tasks down so the final reading is complete.
    for (int i = 0; i < 200 && !job.cgroup->empty(); ++i) {
      job.cgroup->kill_all();
      ::usleep(5000);
    }
    last = job.cgroup->sample();
    if (!limit_hit) {
      // A limit that fired between the last sample and the end still counts.
      if (last.oom_kills > baseline.oom_kills) {
        limit_hit = Verdict::memory_limit;
      } else if (last.pids_max_hits > baseline.pids_max_hits) {
        limit_hit = Verdict::process_limit;
      }
    }
    monitor.observe(last, baseline);
    result.usage.peak_memory_bytes = monitor.peak_memory();
    if (last.cpu_ns >= 0) {
      result.usage.cpu_time_ms = last.cpu_ns / 1'000'000;
    }
  }

  if (setup_failure) {
    result.verdict = Verdict::setup_failure;
    result.setup_stage = child_stage_name(setup_failure->stage);
    result.setup_error = std::strerror(setup_failure->error);
    return;
  }
  if (limit_hit) {
    result.verdict = *limit_hit;
    if (*limit_hit == Verdict::memory_limit) {
      result.limit_reading =
          static_cast<double>(std::max<std::uint64_t>(monitor.peak_memory(), last.memory_peak));
    } else if (*limit_hit == Verdict::process_limit) {
      result.limit_reading =
          static_cast<double>(std::max<std::uint64_t>(monitor.peak_pids(), last.pids_peak));
    }
    return;
  }
  if (job_status) {
    int status = *job_status;
    if (WIFEXITED(status)) {
      result.verdict = Verdict::exited;
      result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      result.signal = WTERMSIG(status);
      result.verdict = result.signal == SIGSYS ? Verdict::seccomp_violation : Verdict::signaled;
    }
    return;
  }
  // The init died without reporting: something outside killed it.
  result.verdict = Verdict::setup_failure;
  result.setup_stage = "init";
  result.setup_error = init_status && WIFSIGNALED(*init_status)
                           ? std::string("the jail's init was killed by signal ") +
                                 std::to_string(WTERMSIG(*init_status))
                           : std::string("the jail's init ended without reporting the job");
}

} // namespace sandbox::jail
