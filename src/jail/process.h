#pragma once
// The process-runner interface every backend spawns through. A runner takes a
// ProcessSpec (what to run, with what environment, what it may read and write,
// which limits) and returns one ProcessResult with a Verdict saying why the
// job ended. GroupRunner runs the job in its own process group on the host;
// the namespace jail implements the same interface, so backends move into it
// without change.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::jail {

namespace fs = std::filesystem;

struct Limits {
  std::int64_t wall_timeout_ms = 30'000;
  std::int64_t cpu_time_ms = 0;                    // 0: no CPU-time limit
  std::uint64_t memory_bytes = 256ull << 20;       // the specification's memory_limit
  double cpu_percent = 80.0;                        // the specification's cpu_limit
  int max_processes = 100;                          // the specification's max_processes
  std::uint64_t output_cap_bytes = 1ull << 20;      // stdout+stderr kept, then the job ends
};

// A host directory the job sees. A runner that remaps paths (remaps_paths())
// shows it at `inside`; one that does not shows it at `host`, and the caller
// then uses host paths in argv, env and cwd.
struct Bind {
  fs::path host;
  fs::path inside;
  bool writable = false;
};

struct ProcessSpec {
  std::vector<std::string> argv; // argv[0] is an absolute path as the job sees it
  std::vector<std::string> env;  // the complete environment, "KEY=VALUE"; nothing is inherited
  fs::path cwd;                  // as the job sees it
  std::vector<Bind> binds;       // beyond the toolchain: the sandbox source, the job's temp dir
  Limits limits;
  // Host paths bound read-only at the same paths (the toolchain's); unset:
  // the runner's default (MountOptions::toolchain).
  std::optional<std::vector<fs::path>> toolchain_paths;
};

enum class Verdict {
  exited,            // the job exited by itself; see exit_code
  signaled,          // killed by a signal it did not get from the supervisor
  wall_timeout,      // ran past limits.wall_timeout_ms
  cpu_time_limit,    // used more than limits.cpu_time_ms of CPU
  memory_limit,      // the out-of-memory killer fired under limits.memory_bytes
  process_limit,     // hit limits.max_processes
  output_limit,      // printed more than limits.output_cap_bytes
  seccomp_violation, // made a forbidden system call
  setup_failure,     // the runner could not start the job; never the job's fault
};

std::string_view to_string(Verdict verdict);

struct ResourceUsage {
  std::uint64_t peak_memory_bytes = 0;
  std::int64_t cpu_time_ms = 0;
  std::int64_t wall_time_ms = 0;
};

struct ProcessResult {
  Verdict verdict = Verdict::setup_failure;
  int exit_code = -1; // valid when verdict == exited
  int signal = 0;     // valid when verdict == signaled or seccomp_violation
  std::string output; // stdout and stderr interleaved, at most limits.output_cap_bytes
  bool output_truncated = false;
  ResourceUsage usage;
  std::string setup_stage; // when verdict == setup_failure: which step failed
  std::string setup_error; //   and why
  std::vector<std::string> warnings; // resource monitor warnings, in order
  // Peak reading of the limit that ended the job (memory bytes, process count).
  double limit_reading = 0;

  [[nodiscard]] bool succeeded() const { return verdict == Verdict::exited && exit_code == 0; }
};

// Which isolation layers a runner applies, by name ("user_ns", "seccomp", ...).
struct Isolation {
  std::string mode; // "process_group", "jail", ...
  std::map<std::string, bool> layers;
  std::vector<std::string> enforced_limits; // e.g. "timeout", "memory_limit"
};

nlohmann::json to_json(const Isolation& isolation);
nlohmann::json to_json(const ResourceUsage& usage);

// A null-terminated array of pointers into `strings` for execve; built before
// fork, since the child must not allocate. Valid while `strings` lives.
std::vector<char*> exec_array(const std::vector<std::string>& strings);

class ProcessRunner {
public:
  virtual ~ProcessRunner() = default;
  // Runs the job to its end. Never throws for anything the job does.
  virtual ProcessResult run(const ProcessSpec& spec) = 0;
  [[nodiscard]] virtual Isolation isolation() const = 0;
  // True when binds appear at Bind::inside rather than at their host path.
  [[nodiscard]] virtual bool remaps_paths() const = 0;
};

// The engine's direct children that a runner owns. GroupRunner makes the
// engine a child subreaper, so processes that left a job's group (setsid,
// double fork) come back to the engine when their parent dies; any child of
// the engine not registered here is such an orphan and is killed.
class ChildRegistration {
public:
  explicit ChildRegistration(int pid);
  ChildRegistration(const ChildRegistration&) = delete;
  ChildRegistration& operator=(const ChildRegistration&) = delete;
  ~ChildRegistration();

private:
  int m_pid;
};

// Kills and reaps the engine's children that no runner registered, until
// none is left or `budget_ms` has passed. Returns how many were killed.
int kill_orphaned_children(int budget_ms = 2000);

// Runs the job on the host in its own process group with PDEATHSIG, a wall
// deadline and an output cap; the whole group is killed when the job ends or
// runs out of time. It does not contain the job: the namespace jail does.
class GroupRunner final : public ProcessRunner {
public:
  ProcessResult run(const ProcessSpec& spec) override;
  [[nodiscard]] Isolation isolation() const override;
  [[nodiscard]] bool remaps_paths() const override { return false; }
};

} // namespace sandbox::jail
