#pragma once
// Watches a started jail until its init exits: output into a capped buffer,
// setup-failure and job-status records from the report pipe, the wall and CPU
// deadlines, and a resource monitor over the job cgroup. Decides the verdict.

#include "jail/cgroup.h"
#include "jail/process.h"

#include <sys/types.h>

#include <cstdint>

namespace sandbox::jail {

struct MonitorSettings {
  int interval_ms = 100;
  double warn_fraction = 0.8;
  int violation_after = 3;
  std::size_t max_warnings = 64;
  std::uint64_t pids_max = 0; // the pids.max written, for warnings
};

struct SupervisedJob {
  pid_t init_pid = -1;
  int pidfd = -1;
  int output_fd = -1;
  int report_fd = -1;
  JobCgroup* cgroup = nullptr; // null when the job runs without cgroups
  // Optional read end: one byte (a Verdict) written there makes the
  // supervisor kill the job and report that verdict (an engine-side deadline).
  int stop_fd = -1;
};

// Runs to the end: the init has exited and been reaped, the cgroup (if any)
// is empty. Fills verdict, exit code or signal, output, usage (except wall
// time), setup stage/error, warnings and limit_reading.
void supervise(const SupervisedJob& job, const Limits& limits, const MonitorSettings& monitor,
               ProcessResult& result);

} // namespace sandbox::jail
