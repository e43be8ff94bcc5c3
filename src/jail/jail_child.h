#pragma once
// The code that runs in the jail between clone and exec: the init process
// (pid 1 of the new pid namespace) that builds the file system, drops every
// privilege, forks the job, reaps zombies and reports the job's status. It
// never throws and never allocates: everything it reads is prepared by the
// engine in ChildConfig, and failures travel to the engine as ChildReport
// records on a pipe.

#include "jail/mounts.h"
#include "jail/seccomp_policy.h"

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>

namespace sandbox::jail {

enum class ReportKind : int {
  setup_failed = 1, // stage and error are set
  job_status = 2,   // status is the job's wait status
};

struct ChildReport {
  ReportKind kind;
  int stage; // ChildStage, or kMountStageBase + MountStage
  int error; // errno
  int status;
};

enum class ChildStage : int {
  sync,
  pdeathsig,
  setgroups,
  setgid,
  setuid,
  cgroup_ns,
  hostname,
  rlimit,
  capbset,
  capset,
  ambient,
  no_new_privs,
  seccomp,
  fork_job,
  dup2,
  chdir,
  execve,
};
constexpr int kMountStageBase = 100;

// The name a setup stage is reported under (Verdict::setup_failure's setup_stage).
const char* child_stage_name(int stage);

struct ChildConfig {
  const PreparedMounts* mounts = nullptr;
  std::uint64_t root_bytes = 1 << 20;
  const SeccompProgram* seccomp = nullptr; // null: no filter
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;
  const char* hostname = "sandbox";
  uid_t uid = 1000; // inside the user namespace
  gid_t gid = 1000;
  bool drop_groups = true; // setgroups({}): possible when the engine wrote gid_map as root
  bool new_cgroup_ns = true;
  int cap_last = 63;
  rlim_t core_bytes = 0;
  rlim_t open_files = 1024;
  rlim_t file_bytes = 256ull << 20;
  rlim_t address_space = 4ull << 30;
  int sync_fd = -1;   // read end: one byte once uid/gid maps and cgroups are in place
  int report_fd = -1; // write end, close-on-exec
  int output_fd = -1; // write end of the output pipe: the job's stdout and stderr
  int null_fd = -1;   // /dev/null for stdin, opened by the engine
  // Extra descriptors the job gets as fds 3, 4, ... (a worker's port pipes);
  // each must be >= kInheritFdMin so moving them cannot clobber another.
  const int* inherit_fds = nullptr;
  int inherit_count = 0;
};

inline constexpr int kInheritFdMin = 10;
inline constexpr int kMaxInheritFds = 4;

// The entry point of the cloned child. Does not return.
[[noreturn]] void jail_init_main(const ChildConfig& config);

} // namespace sandbox::jail
