#pragma once
// Per-job cgroups on v1, v2 and the hybrid layout (v1 controllers plus a v2
// hierarchy without controllers that still offers cgroup.kill and cpu.stat).
// The layout is read from /proc/self/mountinfo and /proc/self/cgroup; job
// cgroups are created under the engine's own cgroup in each hierarchy, since
// in a container that is the part of the tree we may write.

#include "jail/process.h"

#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::jail {

// Where job cgroups go, per controller.
struct CgroupLayout {
  // Controller ("memory", "pids", "cpu", "cpuacct", "freezer") -> the v1
  // directory under which job cgroups are created (mount point joined with
  // the engine's own cgroup). Co-mounted controllers share a directory.
  std::map<std::string, fs::path> v1;
  // The v2 directory under which job cgroups are created, if a cgroup2
  // hierarchy is mounted.
  std::optional<fs::path> unified;
  // Controllers the v2 parent enables for its children (cgroup.subtree_control).
  std::vector<std::string> v2_controllers;

  // Which hierarchy serves a controller: v1 when mounted there, else v2 when
  // enabled for children, else none.
  [[nodiscard]] std::optional<fs::path> parent_for(std::string_view controller) const;
  [[nodiscard]] bool on_v2(std::string_view controller) const;
  [[nodiscard]] std::string describe() const; // "hybrid", "v1", "v2", "none"
};

// Pure: parses the two files. Paths in the result are not checked.
CgroupLayout parse_cgroup_layout(std::string_view mountinfo, std::string_view self_cgroup,
                                 std::string_view v2_subtree_control);

// Reads the running process's files and, on pure v2, tries to enable the
// memory, pids and cpu controllers for children.
std::expected<CgroupLayout, std::string> detect_cgroup_layout();

struct CgroupTuning {
  // Extra pids beyond Limits::max_processes for threads: pids.max counts
  // every task, and one BEAM starts ~20 threads on 2 cores (schedulers and
  // dirty schedulers per core, 10 dirty I/O, async, aux, poll, signal). The
  // default allowance is 2 per core plus 32.
  int thread_allowance = -1; // -1: 2 * ncpus + 32
  std::int64_t cpu_period_us = 100'000;
};

// The numbers written to the cgroup files for a job (pure).
struct CgroupValues {
  std::uint64_t memory_bytes = 0;
  std::uint64_t pids_max = 0;
  std::int64_t cpu_period_us = 0;
  std::int64_t cpu_quota_us = 0; // -1: no quota
};

// memory_limit -> memory bytes; max_processes -> max_processes + allowance;
// cpu_limit percent of the whole machine -> quota = percent/100 * period * ncpus
// (80% on 2 cores: 160 ms per 100 ms period). percent <= 0 or >= 100*ncpus: no quota.
CgroupValues cgroup_values(const Limits& limits, const CgroupTuning& tuning, unsigned ncpus);

// One file write: the controller decides the hierarchy, `file` is relative to
// the job directory.
struct CgroupWrite {
  std::string controller;
  std::string file;
  std::string value;
  bool required = true; // memsw and swap.max are optional (no swap accounting)
  bool operator==(const CgroupWrite&) const = default;
};

// Pure: the writes that apply `values` on the given layout, in order.
std::vector<CgroupWrite> cgroup_writes(const CgroupValues& values, const CgroupLayout& layout);

struct CgroupSample {
  std::uint64_t memory_bytes = 0;
  std::uint64_t memory_peak = 0;
  std::uint64_t pids = 0;
  std::uint64_t pids_peak = 0;
  std::int64_t cpu_ns = -1; // -1: no cpu accounting
  std::uint64_t oom_kills = 0;
  std::uint64_t pids_max_hits = 0;
};

// The cgroups of one job in every hierarchy; removed (after killing anything
// left in them) when destroyed.
class JobCgroup {
public:
  static std::expected<JobCgroup, std::string>
  create(const CgroupLayout& layout, const std::string& name, const CgroupValues& values);
  JobCgroup(const JobCgroup&) = delete;
  JobCgroup& operator=(const JobCgroup&) = delete;
  JobCgroup(JobCgroup&& other) noexcept;
  JobCgroup& operator=(JobCgroup&& other) noexcept;
  ~JobCgroup();

  // An O_DIRECTORY fd of the v2 job cgroup for clone3(CLONE_INTO_CGROUP), or -1.
  [[nodiscard]] int unified_fd() const { return m_unified_fd; }
  // Moves `pid` into every job cgroup (skipping v2 when it was cloned there).
  std::expected<void, std::string> attach(int pid, bool skip_unified) const;
  [[nodiscard]] CgroupSample sample() const;
  // Kills every process in the job: cgroup.kill, else freeze + SIGKILL +
  // thaw, else SIGKILL to every listed pid. Returns the method used.
  std::string kill_all() const;
  [[nodiscard]] bool empty() const;
  [[nodiscard]] bool has(std::string_view controller) const;
  [[nodiscard]] std::vector<fs::path> directories() const;
  // Kills what is left, waits up to `wait_ms` for the cgroups to empty, removes them.
  void remove(int wait_ms = 2000);

private:
  JobCgroup() = default;
  [[nodiscard]] std::optional<fs::path> dir_for(std::string_view controller) const;
  std::map<std::string, fs::path> m_dirs; // controller (or "unified") -> job directory
  std::vector<fs::path> m_created;        // distinct directories, in creation order
  int m_unified_fd = -1;
};

// The name of a job cgroup: prefix, engine pid, counter.
std::string job_cgroup_name(int pid, std::uint64_t counter);
constexpr std::string_view kJobCgroupPrefix = "sandbox-job-";

// Removes job cgroups whose engine (the pid in the name) is gone. Returns the
// directories removed.
std::vector<fs::path> remove_stale_cgroups(const CgroupLayout& layout);

} // namespace sandbox::jail
