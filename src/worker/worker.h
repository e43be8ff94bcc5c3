#pragma once
// One warm compile worker: an `erl` running priv/sandbox_worker.erl inside its
// own jail (NamespaceRunner::start: own cgroup and limits, seccomp, pid
// namespace), reached over pipes mapped to its fds 3/4. Its only writable
// place is a per-worker job directory, seen as /job inside, where it writes
// BEAMs (out-N). The engine puts a request's sources in the worker's sandbox
// directory, seen read-only as /sandbox: the path a jailed elixirc or mix job
// compiles at, so both produce the same BEAMs.
// Any failure on the port (a crash, a deadline, an oversized or malformed
// frame, a limit) kills the whole jail and comes back as a typed error; the
// worker is then dead and only fit to be destroyed.

#include "core/error.h"
#include "backends/toolchain.h"
#include "jail/namespace_runner.h"
#include "util/fs.h"
#include "worker/protocol.h"

#include <chrono>
#include <expected>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sandbox::worker {

namespace fs = std::filesystem;

// What a worker is started with: jobs whose profile differs need another worker.
struct WorkerProfile {
  jail::Limits limits;          // wall_timeout_ms is ignored: deadlines are per request
  std::vector<std::string> env; // the complete environment, "KEY=VALUE"
  backends::ToolchainRef toolchain; // unset: the system's

  [[nodiscard]] std::string toolchain_identity() const
  {
    return toolchain ? toolchain->identity : backends::toolchain_identity();
  }

  friend bool operator==(const WorkerProfile& a, const WorkerProfile& b)
  {
    return a.toolchain_identity() == b.toolchain_identity() &&
           a.limits.cpu_time_ms == b.limits.cpu_time_ms &&
           a.limits.memory_bytes == b.limits.memory_bytes &&
           a.limits.cpu_percent == b.limits.cpu_percent &&
           a.limits.max_processes == b.limits.max_processes &&
           a.limits.output_cap_bytes == b.limits.output_cap_bytes && a.env == b.env;
  }
};

inline constexpr const char* kJobDirInside = "/job";
inline constexpr const char* kSandboxInside = "/sandbox";
// Read-only, like /sandbox: a partial compile's previous BEAMs, in
// <kPriorInside>/beams, so a job cannot alter what the next one is given.
inline constexpr const char* kPriorInside = "/prior";
inline constexpr const char* kWorkerEbinInside = "/sandbox-worker/ebin";

// Where the worker program (sandbox_worker.beam) is, and how it was found:
// $SANDBOX_WORKER_EBIN when set ("environment"); else beside the running
// binary, <bin>/../lib/sandbox/ebin, when it holds the program ("install");
// else the build tree's priv/ ("build"). An installed engine thus never
// depends on the build tree, and a staged (DESTDIR) install works once moved.
struct WorkerEbin {
  fs::path path;
  std::string found_by; // "environment", "install" or "build"
  bool present = false; // path/sandbox_worker.beam is a regular file
};
WorkerEbin locate_worker_ebin();
fs::path worker_ebin();

// The default environment of a worker (PATH, HOME and TMPDIR under /job, LANG)
// for `toolchain` (unset: the system's).
std::vector<std::string> default_worker_env(const std::map<std::string, std::string>& extra = {},
                                            const backends::ToolchainRef& toolchain = nullptr);

// The worker program for a toolchain: the located one (locate_worker_ebin)
// when the toolchain runs on the Erlang/OTP it was built with, else a copy
// compiled from its source with the toolchain's erlc, once, under
// <state>/workers/<OTP identity>/.
std::expected<fs::path, core::Error> worker_ebin_for(const backends::Toolchain& toolchain);

class Worker {
public:
  // Starts the jail and waits for the worker's handshake.
  static std::expected<std::unique_ptr<Worker>, core::Error>
  start(jail::NamespaceRunner& runner, const WorkerProfile& profile,
        std::chrono::milliseconds boot_timeout = std::chrono::milliseconds(30'000));

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker(); // kills the jail, removes the job directory

  // Sends one request and waits for its reply until `timeout`. On any failure
  // the worker is killed (alive() turns false) and the error says why.
  std::expected<CompileReply, core::Error> compile(const CompileRequest& request,
                                                   std::chrono::milliseconds timeout);

  // The hygiene check between two jobs (priv/sandbox_worker.erl, check/2):
  // the last job's modules are purged and the VM compared with its
  // baseline. Any failure kills the worker, as compile() does.
  std::expected<CheckReply, core::Error> check(long atom_budget, long memory_budget,
                                               std::chrono::milliseconds timeout);
  // Every module the worker had loaded or on its code path after its warm-up
  // (BEAM atoms: "Elixir.Enum", "lists"), asked once at start.
  [[nodiscard]] const std::set<std::string>& loaded_modules() const { return m_loaded_modules; }
  // True when the job directory holds what it held right after the warm-up
  // (names, kinds, sizes, times), so nothing a job wrote stays on disk.
  [[nodiscard]] bool job_dir_pristine() const;

  [[nodiscard]] bool alive() const { return m_alive && !m_job->finished(); }
  [[nodiscard]] const fs::path& job_dir() const { return m_job_dir; } // on the host, seen as /job
  // On the host, seen read-only as /sandbox; a bind, so it is emptied, never replaced.
  [[nodiscard]] const fs::path& sandbox_dir() const { return m_sandbox_dir; }
  [[nodiscard]] const fs::path& prior_dir() const { return m_prior_dir; }
  [[nodiscard]] const WorkerProfile& profile() const { return m_profile; }
  [[nodiscard]] const Hello& hello() const { return m_hello; }
  [[nodiscard]] pid_t pid() const { return m_job->pid(); }
  [[nodiscard]] std::chrono::steady_clock::time_point last_used() const { return m_last_used; }
  // A fresh, empty name under job_dir() for the next request (src-N, out-N).
  std::string next_request_id() { return std::to_string(++m_requests); }
  [[nodiscard]] std::size_t requests() const { return m_requests; }
  // A serial number, unique among the workers of this process.
  [[nodiscard]] std::uint64_t id() const { return m_id; }

  // Sandbox binding for reuse: empty when unbound.
  std::string bound_sandbox;
  // Jobs this worker served and passed the hygiene check after (confined reuse).
  std::size_t jobs_served = 0;

private:
  Worker() = default;
  // Kills the jail (reporting `reason` unless it ended by itself) and maps
  // its result onto an error; `timeout_ms` is the deadline that applied.
  core::Error kill_and_explain(jail::Verdict reason, std::int64_t timeout_ms,
                               std::string what);
  // One request, one reply frame; any failure kills the worker.
  std::expected<std::string, core::Error> exchange(const std::string& payload,
                                                   std::chrono::milliseconds timeout);
  [[nodiscard]] std::string job_dir_listing() const;

  WorkerProfile m_profile;
  std::optional<util::TempDir> m_temp;
  fs::path m_job_dir;
  fs::path m_sandbox_dir;
  fs::path m_prior_dir;
  std::unique_ptr<jail::RunningJob> m_job;
  util::Fd m_to_worker;   // the worker's fd 3
  util::Fd m_from_worker; // the worker's fd 4
  Hello m_hello;
  std::set<std::string> m_loaded_modules;
  std::string m_job_dir_listing;
  bool m_alive = false;
  std::size_t m_requests = 0;
  std::uint64_t m_id = 0;
  std::chrono::steady_clock::time_point m_last_used = std::chrono::steady_clock::now();
};

} // namespace sandbox::worker
