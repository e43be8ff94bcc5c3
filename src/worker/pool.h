#pragma once
// The pool of warm workers. Workers are prestarted in the background so a
// request pays no VM boot; a worker is idle (offered to jobs) only once it has
// loaded and exercised the compiler, and replacements are not booted while a
// job runs, so they do not take the CPU that job needs. Unless given back for
// reuse, a worker serves one job and is destroyed while a replacement starts.
// With reuse_per_sandbox a worker
// that finished a job cleanly stays bound to that sandbox for its next
// compile and never serves another (it is destroyed instead); any error
// destroys it. Confined reuse (docs/security.md, "Reusing a warm worker"): a worker
// whose job was confined and that passed the hygiene check after it is given
// back unbound with recycle() and may serve any tenant next, up to
// reuse_limit jobs. Thread-safe: concurrent jobs get distinct workers.

#include "core/error.h"
#include "jail/namespace_runner.h"
#include "worker/worker.h"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sandbox::worker {

struct PoolSettings {
  std::size_t size = 2;     // workers alive at most, busy, idle or starting
  std::size_t prestart = 1; // idle workers kept ready (with the default profile)
  std::chrono::milliseconds idle_timeout{60'000}; // idle longer than this: destroyed
  bool reuse_per_sandbox = false;
  // Jobs one worker serves at most through confined reuse before it is replaced.
  std::size_t reuse_limit = 200;
  std::optional<WorkerProfile> profile; // what prestarted workers get; unset: the defaults
  // A replacement boots a VM and loads the compiler (about a second of CPU),
  // so it is not started while a job runs: it waits until no job is busy, or
  // at most this long after the latest job took its worker.
  std::chrono::milliseconds replacement_delay{2'000};
};

class Pool;

// One worker lent to one job. Destroying the lease gives the worker back:
// it is destroyed unless reuse is on, keep() was called and it is healthy.
class Lease {
public:
  Lease(Pool* pool, std::unique_ptr<Worker> worker, std::string sandbox_key, bool reused);
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  Worker& worker() { return *m_worker; }
  // The job succeeded: the worker may serve this sandbox again (reuse only).
  void keep() { m_keep = true; }
  // The job was confined and the worker passed the hygiene check after it:
  // it may serve any job next (confined reuse; unbound).
  void recycle() { m_recycle = true; }
  // True when this worker already served a job before (the same sandbox,
  // or any job through confined reuse).
  [[nodiscard]] bool reused() const { return m_reused; }

private:
  Pool* m_pool;
  std::unique_ptr<Worker> m_worker;
  std::string m_sandbox_key;
  bool m_reused;
  bool m_keep = false;
  bool m_recycle = false;
};

struct PoolStats {
  std::size_t idle = 0;
  std::size_t busy = 0;
  std::size_t starting = 0;
  std::size_t started_total = 0;
};

class Pool {
public:
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  // Applies to workers started from now on; enables prestarting.
  void configure(const PoolSettings& settings);
  [[nodiscard]] PoolSettings settings() const;
  // Stops every idle worker and the background thread; busy workers are
  // destroyed when their lease ends. The next acquire starts afresh.
  void shutdown();

  // A worker for one job of `sandbox_key` (a resolved sandbox path) with
  // `profile`; waits for a free slot until `deadline`. `fresh_only`: a
  // worker that never served a job (worker_reuse "never").
  std::expected<Lease, core::Error> acquire(const WorkerProfile& profile,
                                            const std::string& sandbox_key, Deadline deadline,
                                            bool fresh_only = false);

  [[nodiscard]] PoolStats stats() const;
  // True once configure() enabled prestarting (a long-running host): jobs
  // can expect a warm worker rather than a boot.
  [[nodiscard]] bool prestarting() const;
  // The isolation every worker runs under.
  [[nodiscard]] jail::Isolation isolation();
  // The profile prestarted workers get: the configured one, else the default
  // limits and environment with the toolchain of the latest job.
  [[nodiscard]] WorkerProfile default_profile() const;

  // The process-wide pool.
  static Pool& global();

private:
  friend class Lease;
  void give_back(std::unique_ptr<Worker> worker, const std::string& sandbox_key, bool keep,
                 bool recycle);
  void ensure_started(std::unique_lock<std::mutex>& lock);
  void maintain();
  jail::NamespaceRunner& runner();

  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  PoolSettings m_settings;
  bool m_prestart_enabled = false;
  bool m_stopping = false;
  std::thread m_thread;
  std::vector<std::unique_ptr<Worker>> m_idle;
  std::vector<std::unique_ptr<Worker>> m_retired; // destroyed by the background thread
  std::size_t m_busy = 0;
  std::size_t m_starting = 0;
  std::size_t m_started_total = 0;
  std::chrono::steady_clock::time_point m_last_lease{};
  backends::ToolchainRef m_last_toolchain; // of the latest job; prestarted workers get it
  std::once_flag m_runner_once;
  std::unique_ptr<jail::NamespaceRunner> m_runner;
};

} // namespace sandbox::worker
