#pragma once
// NamespaceRunner: runs each job in a fresh user, pid, mount, net, ipc, uts
// and cgroup namespace, on a new root of read-only toolchain binds, under a
// seccomp filter, with no capabilities and no_new_privs, inside a per-job
// cgroup (memory, pids, cpu), supervised for wall time, CPU time, output and
// resource use. See docs/jail.md.

#include "jail/cgroup.h"
#include "jail/mounts.h"
#include "jail/process.h"
#include "jail/seccomp_policy.h"
#include "util/fd.h"

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sandbox::jail {

struct NamespaceRunnerOptions {
  MountOptions mounts;
  CgroupTuning cgroup;
  // The host ids the job's uid/gid map to when the engine runs as root: an
  // unprivileged id that owns nothing on the host. An unprivileged engine
  // maps its own ids (the only ones it may map).
  uid_t host_uid = 60000;
  gid_t host_gid = 60000;
  bool use_cgroups = true;
  // Fail the job (setup_failure, stage "cgroup") when no job cgroup can be
  // made; otherwise run without memory/pids/cpu limits and warn.
  bool require_cgroups = false;
  bool use_seccomp = true;
  // Writable binds are chowned (recursively, never following links) to
  // host_uid/host_gid so the job may write them.
  bool chown_writable_binds = true;
  std::uint64_t root_tmpfs_bytes = 1ull << 20;
  std::uint64_t open_files = 1024;
  std::uint64_t max_file_bytes = 256ull << 20;    // RLIMIT_FSIZE
  std::uint64_t address_space_bytes = 4ull << 30; // RLIMIT_AS, never below 2 GiB (BEAM)
  int monitor_interval_ms = 100;
  double warn_fraction = 0.8; // a reading above this share of a limit is a warning
  int violation_after = 3;    // consecutive warnings that make a violation
  std::size_t max_warnings = 64;
};

struct LaunchedJail;

// A jailed job that runs alongside the engine (a warm compile worker), started
// by NamespaceRunner::start and supervised on its own thread under the same
// limits, verdicts and output cap as run(). Destroying it kills the whole jail
// (every process of its pid namespace and cgroup) and reaps it.
class RunningJob {
public:
  struct State;
  explicit RunningJob(std::unique_ptr<State> state);
  RunningJob(const RunningJob&) = delete;
  RunningJob& operator=(const RunningJob&) = delete;
  ~RunningJob();

  // Kills the job; unless it had ended already, its result carries `reason`
  // as the verdict (wall_timeout when the engine's deadline passed, ...).
  void stop(Verdict reason);
  // Blocks until the jail has ended and been reaped; the result of the run.
  const ProcessResult& wait();
  [[nodiscard]] bool finished() const;
  [[nodiscard]] pid_t pid() const;

private:
  std::unique_ptr<State> m_state;
};

class NamespaceRunner final : public ProcessRunner {
public:
  explicit NamespaceRunner(NamespaceRunnerOptions options = {});

  ProcessResult run(const ProcessSpec& spec) override;
  // Starts the job and returns while it runs. `inherit` become the job's fds
  // 3, 4, ... in order (the engine keeps no copy). A job that could not be
  // started is a setup_failure result.
  std::expected<std::unique_ptr<RunningJob>, ProcessResult> start(const ProcessSpec& spec,
                                                                  std::vector<util::Fd> inherit);
  [[nodiscard]] Isolation isolation() const override;
  [[nodiscard]] bool remaps_paths() const override { return true; }

  [[nodiscard]] const NamespaceRunnerOptions& options() const { return m_options; }
  [[nodiscard]] const std::optional<CgroupLayout>& cgroup_layout() const { return m_layout; }
  // Why a layer is off (seccomp compile error, cgroup detection), if any.
  [[nodiscard]] const std::vector<std::string>& notes() const { return m_notes; }

private:
  std::expected<LaunchedJail, ProcessResult> launch(const ProcessSpec& spec,
                                                    std::span<const int> inherit);

  NamespaceRunnerOptions m_options;
  std::optional<SeccompProgram> m_seccomp;
  std::optional<CgroupLayout> m_layout;
  std::vector<std::string> m_notes;
  unsigned m_ncpus = 1;
  int m_cap_last = 40;
};

} // namespace sandbox::jail
