#pragma once
// A fleet of engines sharing a compile cache and a job queue on Redis
// (docs/fleet.md). A node of `sandbox serve --cluster URL`:
//
// - as a gateway, answers a compile from the shared cache when an action
//   result for the same inputs is there (authenticated with the fleet key,
//   every blob checked against its digest), else puts the job on a Redis
//   Stream (its sources uploaded as blobs first) and waits for the answer a
//   node publishes under the job's id;
// - with job slots, claims jobs from the stream's consumer group, compiles
//   them in its own jail, uploads the outputs, writes the action result and
//   publishes the answer; a job a dead node held is claimed again after the
//   claim timeout (XAUTOCLAIM).
//
// The store is less trusted than a node: everything read from it is verified,
// capped and confined to a fresh directory of the node's own. When the store
// cannot be reached the node says `degraded` and compiles locally; it tries
// again with backoff. Nodes share nothing else.

#include "fleet/action.h"
#include "fleet/redis.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sandbox::fleet {

namespace fs = std::filesystem;

struct FleetSettings {
  RedisUrl url;
  std::string key; // the fleet key every node shares
  std::string ns = "sandbox";
  std::chrono::milliseconds claim_timeout{30'000};
  std::size_t jobs = 2;           // this node's slots for the fleet's jobs; 0: a gateway
  std::size_t max_stream = 256;   // jobs waiting or running in the stream; beyond: busy
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds io_timeout{2'000};
  std::int64_t entry_ttl_s = 7 * 24 * 3600; // action results and blobs
  std::string engine_version;
  std::string node; // this node's name in the consumer group (made unique when empty)
};

// One compile as the fleet sees it.
struct Action {
  std::string op;        // "compile" or "compile_string"
  nlohmann::json args;   // the operation's arguments besides the tree and the options
  nlohmann::json options; // the request's options (local paths removed)
  std::optional<fs::path> tree; // compile: the sandbox to send
  std::string toolchain; // the toolchain's identity across hosts (versions)
  bool cacheable = true;
  std::int64_t timeout_ms = 30'000;
};

class Fleet {
public:
  explicit Fleet(FleetSettings settings);
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // The answer of the fleet (from the shared cache or a node), or nullopt
  // with the reason in `why` when this node should compile it itself (the
  // store unreachable, no node taking jobs, a tree the fleet does not carry,
  // no answer in time). `client_gone` is polled while waiting.
  std::optional<nlohmann::json> run(const Action& action, const std::function<bool()>& client_gone,
                                    std::string& why);

  // Starts claiming jobs: `has_slot` says whether a local job slot is free;
  // `submit` runs work on one (false when none was free); `run_local` runs an
  // operation's request on this node and returns its response.
  using RunLocal = std::function<nlohmann::json(const nlohmann::json& request)>;
  using Submit = std::function<bool(std::function<void()> work)>;
  void start(RunLocal run_local, std::function<bool()> has_slot, Submit submit);
  // Stops claiming; returns once the consumer thread has ended (running jobs
  // finish on their slots and still publish).
  void stop();

  [[nodiscard]] bool healthy() const;
  // {"state": "ok"|"degraded", "url", "namespace", "node", "jobs", "error"?}
  [[nodiscard]] nlohmann::json status() const;
  [[nodiscard]] const FleetSettings& settings() const { return m_settings; }

  // Events worth a line in the service's log.
  std::function<void(const std::string&)> log;

private:
  class Lease;
  std::expected<Lease, std::string> acquire(bool force = false);
  void give_back(std::unique_ptr<Redis> redis);
  void note_failure(const std::string& reason);
  void note_success();
  void say(const std::string& line) const;

  std::string key_of(std::string_view kind, std::string_view name) const;
  std::optional<nlohmann::json> from_cache(Redis& redis, const std::string& action_key, const Action& action,
                                           std::vector<std::string>& warnings);
  std::expected<void, std::string> upload(Redis& redis, const std::map<std::string, std::string>& blobs);
  std::expected<std::map<std::string, std::string>, std::string> download(Redis& redis, const Tree& tree);
  std::expected<nlohmann::json, std::string> materialize(Redis& redis, const nlohmann::json& entry,
                                                         const std::optional<fs::path>& source);

  void consume();
  // `abandon`: the reason to answer the job with an error instead of running it.
  void run_job(const std::string& message_id, const std::string& job_id, const std::string& sealed,
               const std::string& abandon);
  std::expected<void, std::string> ensure_group(Redis& redis);

  FleetSettings m_settings;
  mutable std::mutex m_mutex;
  std::vector<std::unique_ptr<Redis>> m_idle;
  bool m_degraded = false;
  bool m_ever_connected = false;
  std::string m_error;
  std::chrono::steady_clock::time_point m_retry_at{};
  std::chrono::milliseconds m_backoff{100};

  RunLocal m_run_local;
  std::function<bool()> m_has_slot;
  Submit m_submit;
  std::atomic<bool> m_stopping{false};
  std::thread m_consumer;
  std::mutex m_jobs_mutex;
  std::condition_variable m_jobs_changed;
  std::set<std::string> m_running; // stream ids of the jobs this node runs
};

// The fleet the operations of this thread may use (set for the duration of a
// request by the service; null otherwise), with how the request runs locally
// on a job slot of this node when the fleet does not take it.
struct Route {
  Fleet* fleet = nullptr;
  std::function<bool()> client_gone;
  std::function<nlohmann::json(const std::function<nlohmann::json()>& work)> local;
};

class ScopedRoute {
public:
  explicit ScopedRoute(const Route* route);
  ScopedRoute(const ScopedRoute&) = delete;
  ScopedRoute& operator=(const ScopedRoute&) = delete;
  ~ScopedRoute();

private:
  const Route* m_previous;
};

const Route* current_route();

// What `sandbox doctor --cluster URL` says of a fleet's store: {"state": "ok"
// or "degraded", "url", "namespace", "redis_version", "nodes_taking_jobs",
// "jobs_queued", "error"}.
nlohmann::json probe_store(const RedisUrl& url, const std::string& ns);

// The fleet of this process (`sandbox serve --cluster`), for `ping` and `doctor`.
void set_process_fleet(std::shared_ptr<Fleet> fleet);
std::shared_ptr<Fleet> process_fleet();

} // namespace sandbox::fleet
