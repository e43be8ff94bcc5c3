#include "fleet/fleet.h"

#include "compiler/engine_state.h"
#include "jail/cancel.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/time.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>

namespace sandbox::fleet {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kGroup = "workers";
constexpr std::size_t kBatch = 64;            // commands per pipeline
constexpr std::int64_t kResultTtlS = 600;     // an answer waits this long for its gateway
constexpr int kLivenessS = 5;                 // a node is alive this long after its heartbeat
constexpr milliseconds kWaitRound{500};
constexpr long long kMaxDeliveries = 3;       // a job taken more often is answered with an error

// Puts a job on the stream unless no node takes jobs or the stream is full.
constexpr const char* kSubmitScript = R"(
local t = redis.call('TIME')
if redis.call('ZCOUNT', KEYS[2], tonumber(t[1]) - tonumber(ARGV[4]), '+inf') == 0 then return 'no_workers' end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 'busy' end
return redis.call('XADD', KEYS[1], '*', 'job', ARGV[2], 'body', ARGV[3])
)";

// A node that takes jobs says so, by the store's clock.
constexpr const char* kHeartbeatScript = R"(
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], t[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) - 3600)
return 1
)";

thread_local const Route* t_route = nullptr;
std::mutex g_process_mutex;
std::shared_ptr<Fleet> g_process_fleet;

json fleet_error(std::string_view type, json fields)
{
  fields["type"] = type;
  return {{"ok", false}, {"error", std::move(fields)}};
}

std::string random_hex(std::size_t bytes)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : util::random_bytes(bytes)) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string node_name()
{
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return fmt::format("{}-{}-{}", host, ::getpid(), random_hex(3));
}

std::string string_field(const Reply& entry, std::string_view name)
{
  // A stream entry's fields: [k1, v1, k2, v2, ...]
  for (std::size_t i = 0; i + 1 < entry.elements.size(); i += 2) {
    if (entry.elements[i].str == name) {
      return entry.elements[i + 1].str;
    }
  }
  return {};
}

} // namespace

// A connection borrowed from the pool; a broken one is dropped and marks the
// fleet degraded.
class Fleet::Lease {
public:
  Lease(Fleet& fleet, std::unique_ptr<Redis> redis) : m_fleet(&fleet), m_redis(std::move(redis)) {}
  Lease(Lease&& other) noexcept : m_fleet(other.m_fleet), m_redis(std::move(other.m_redis)) {}
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease()
  {
    if (m_redis) {
      m_fleet->give_back(std::move(m_redis));
    }
  }
  Redis& operator*() { return *m_redis; }
  Redis* operator->() { return m_redis.get(); }

private:
  Fleet* m_fleet;
  std::unique_ptr<Redis> m_redis;
};

Fleet::Fleet(FleetSettings settings) : m_settings(std::move(settings))
{
  if (m_settings.node.empty()) {
    m_settings.node = node_name();
  }
}

Fleet::~Fleet() { stop(); }

void Fleet::say(const std::string& line) const
{
  if (log) {
    log(line);
  }
}

std::string Fleet::key_of(std::string_view kind, std::string_view name) const
{
  return fmt::format("{}:{}:{}", m_settings.ns, kind, name);
}

std::expected<Fleet::Lease, std::string> Fleet::acquire(bool force)
{
  {
    std::lock_guard lock(m_mutex);
    if (!m_idle.empty()) {
      auto redis = std::move(m_idle.back());
      m_idle.pop_back();
      return Lease(*this, std::move(redis));
    }
    if (m_degraded && !force && Clock::now() < m_retry_at) {
      return std::unexpected(m_error);
    }
  }
  auto redis = Redis::connect(m_settings.url, m_settings.connect_timeout, m_settings.io_timeout);
  if (!redis) {
    note_failure(redis.error());
    return std::unexpected(redis.error());
  }
  note_success();
  return Lease(*this, std::move(*redis));
}

void Fleet::give_back(std::unique_ptr<Redis> redis)
{
  if (redis->broken()) {
    note_failure("the connection to the store broke");
    return;
  }
  std::lock_guard lock(m_mutex);
  if (m_idle.size() < 8) {
    m_idle.push_back(std::move(redis));
  }
}

void Fleet::note_failure(const std::string& reason)
{
  std::lock_guard lock(m_mutex);
  m_idle.clear(); // a store that went away took every connection with it
  if (!m_degraded) {
    m_backoff = milliseconds{100};
    say(fmt::format("cluster degraded: {}; compiling locally, retrying with backoff", reason));
  } else {
    m_backoff = std::min(m_backoff * 2, milliseconds{5'000});
  }
  m_degraded = true;
  m_error = reason;
  m_retry_at = Clock::now() + m_backoff;
}

void Fleet::note_success()
{
  std::lock_guard lock(m_mutex);
  if (m_degraded) {
    say(fmt::format("cluster ok: {} reachable again", m_settings.url.describe()));
  }
  m_degraded = false;
  m_ever_connected = true;
  m_error.clear();
  m_backoff = milliseconds{100};
}

bool Fleet::healthy() const
{
  std::lock_guard lock(m_mutex);
  return !m_degraded;
}

json Fleet::status() const
{
  std::lock_guard lock(m_mutex);
  json out = {{"state", m_degraded ? "degraded" : "ok"},
              {"url", m_settings.url.describe()},
              {"namespace", m_settings.ns},
              {"node", m_settings.node},
              {"jobs", m_settings.jobs},
              {"claim_timeout_ms", m_settings.claim_timeout.count()}};
  if (m_degraded) {
    out["error"] = m_error;
  }
  return out;
}

std::expected<void, std::string> Fleet::upload(Redis& redis, const std::map<std::string, std::string>& blobs)
{
  auto ttl = std::to_string(m_settings.entry_ttl_s);
  std::vector<std::string> keys;
  keys.reserve(blobs.size());
  for (const auto& [digest, bytes] : blobs) {
    keys.push_back(key_of("cas", digest));
  }
  std::vector<std::vector<std::string_view>> batch;
  std::size_t i = 0;
  for (const auto& [digest, bytes] : blobs) {
    // A blob already there keeps its content (it is named by it) and gains time.
    batch.push_back({"SET", keys[i], bytes, "EX", ttl});
    ++i;
    if (batch.size() == kBatch || i == blobs.size()) {
      auto replies = redis.pipeline(batch);
      if (!replies) {
        return std::unexpected(replies.error());
      }
      for (const auto& reply : *replies) {
        if (reply.is_error()) {
          return std::unexpected("SET: " + reply.str);
        }
      }
      batch.clear();
    }
  }
  return {};
}

std::expected<std::map<std::string, std::string>, std::string> Fleet::download(Redis& redis, const Tree& tree)
{
  std::map<std::string, std::string> blobs;
  std::vector<std::string> wanted;
  for (const auto& file : tree.files) {
    if (file.kind != 'd' && !blobs.contains(file.digest) &&
        std::find(wanted.begin(), wanted.end(), file.digest) == wanted.end()) {
      wanted.push_back(file.digest);
    }
  }
  for (std::size_t start = 0; start < wanted.size(); start += kBatch) {
    std::vector<std::string> keys;
    std::vector<std::string_view> argv = {"MGET"};
    auto end = std::min(wanted.size(), start + kBatch);
    for (auto i = start; i < end; ++i) {
      keys.push_back(key_of("cas", wanted[i]));
    }
    for (const auto& key : keys) {
      argv.push_back(key);
    }
    auto reply = redis.command(argv);
    if (!reply) {
      return std::unexpected(reply.error());
    }
    if (reply->type != Reply::Type::array || reply->elements.size() != keys.size()) {
      return std::unexpected("MGET: an unexpected reply");
    }
    for (auto i = start; i < end; ++i) {
      auto& blob = reply->elements[i - start];
      if (blob.type != Reply::Type::string) {
        return std::unexpected(fmt::format("blob {} is missing", wanted[i]));
      }
      if (blob.str.size() > kMaxBlobBytes || util::sha256_hex(blob.str) != wanted[i]) {
        return std::unexpected(fmt::format("blob {} does not match its digest", wanted[i]));
      }
      blobs.emplace(wanted[i], std::move(blob.str));
    }
  }
  return blobs;
}

// An answer's response with its outputs written into a fresh temp dir of this
// node and the placeholders turned into this node's paths.
std::expected<json, std::string> Fleet::materialize(Redis& redis, const json& entry,
                                                    const std::optional<fs::path>& source)
{
  if (!entry.is_object() || !entry.contains("response") || !entry["response"].is_object()) {
    return std::unexpected("an entry without a response");
  }
  json response = entry["response"];
  auto outputs = tree_from_json(entry.value("outputs", json::array()));
  if (!outputs) {
    return std::unexpected(outputs.error());
  }
  std::optional<fs::path> temp;
  if (response.value("ok", false) && response.contains("temp_dir")) {
    auto blobs = download(redis, *outputs);
    if (!blobs) {
      return std::unexpected(blobs.error());
    }
    auto made = compiler::create_marked_temp_dir(util::default_temp_root());
    if (!made) {
      return std::unexpected("temp dir: " + made.error());
    }
    temp = *made;
    if (auto written = write_tree(*outputs, *blobs, *temp); !written) {
      (void)util::remove_tree(*temp);
      return std::unexpected(written.error());
    }
    replace_in_strings(response, kTempToken, temp->string());
  }
  replace_in_strings(response, kSourceToken, source ? source->string() : std::string("/sandbox"));
  return response;
}

std::optional<json> Fleet::from_cache(Redis& redis, const std::string& action_key, const Action& action,
                                      std::vector<std::string>& warnings)
{
  auto name = key_of("ac", action_key);
  auto reply = redis.command({"GET", name});
  if (!reply || reply->type != Reply::Type::string) {
    return std::nullopt;
  }
  auto body = unseal(m_settings.key, m_settings.ns, "ac", action_key, reply->str);
  if (!body) {
    warnings.push_back(fmt::format("fleet cache entry {} was not used: {}", action_key.substr(0, 16), body.error()));
    return std::nullopt;
  }
  auto entry = json::parse(*body, nullptr, false);
  auto response = materialize(redis, entry, action.tree);
  if (!response) {
    warnings.push_back(fmt::format("fleet cache entry {} was not used: {}", action_key.substr(0, 16), response.error()));
    return std::nullopt;
  }
  (*response)["cache_hit"] = true;
  (*response)["fleet"] = {{"cache", "hit"}, {"node", entry.value("node", "")}, {"action", action_key}};
  return std::move(*response);
}

std::optional<json> Fleet::run(const Action& action, const std::function<bool()>& client_gone, std::string& why)
{
  util::Stopwatch clock;
  auto lease = acquire();
  if (!lease) {
    why = "cluster degraded: " + lease.error();
    return std::nullopt;
  }
  std::map<std::string, std::string> blobs;
  Tree tree;
  if (action.tree) {
    auto read = read_tree(*action.tree, blobs);
    if (!read) {
      why = read.error();
      return std::nullopt;
    }
    tree = std::move(*read);
  }
  json description = {{"engine", m_settings.engine_version}, {"op", action.op},     {"args", action.args},
                      {"options", action.options},           {"toolchain", action.toolchain},
                      {"tree", tree_to_json(tree)}};
  auto key = action_key(description);
  std::vector<std::string> warnings;
  auto with_warnings = [&](json response) {
    if (!warnings.empty() && response.value("ok", false)) {
      auto& list = response["cache_warnings"];
      if (!list.is_array()) {
        list = json::array();
      }
      for (auto& warning : warnings) {
        list.push_back(warning);
      }
    }
    return response;
  };
  if (action.cacheable) {
    if (auto hit = from_cache(**lease, key, action, warnings)) {
      (*hit)["compilation_time"] = clock.elapsed_ms();
      return hit;
    }
    if ((*lease)->broken()) {
      why = "cluster degraded: the store went away";
      return std::nullopt;
    }
  }

  if (auto sent = upload(**lease, blobs); !sent) {
    why = "cluster degraded: " + sent.error();
    return std::nullopt;
  }
  auto job_id = random_hex(16);
  description["job"] = job_id;
  description["key"] = key;
  description["cacheable"] = action.cacheable;
  description["gateway"] = m_settings.node;
  auto sealed = seal(m_settings.key, m_settings.ns, "job", job_id, description.dump());
  auto stream = key_of("jobs", "stream");
  auto nodes = key_of("nodes", "alive");
  auto max = std::to_string(m_settings.max_stream);
  auto live = std::to_string(kLivenessS);
  auto added = (*lease)->command({"EVAL", kSubmitScript, "2", stream, nodes, max, job_id, sealed, live});
  if (!added || added->is_error()) {
    why = "cluster degraded: " + (added ? added->str : added.error());
    return std::nullopt;
  }
  if (added->str == "no_workers") {
    why = "no node of the fleet takes jobs";
    return std::nullopt;
  }
  if (added->str == "busy") {
    return fleet_error("busy", {{"reason", "the fleet's queue is full"}, {"max_queue", m_settings.max_stream}});
  }
  const std::string message_id = added->str;
  auto done = key_of("done", job_id);
  auto deadline = milliseconds{action.timeout_ms} + m_settings.claim_timeout + milliseconds{10'000};
  int missing_rounds = 0;
  auto last_check = Clock::now();
  auto give_up = [&](std::string reason) -> std::optional<json> {
    (void)(*lease)->command({"XDEL", stream, message_id});
    why = std::move(reason);
    return std::nullopt;
  };
  // The blocking pop uses this connection alone; its read timeout is above a round.
  while (true) {
    if ((client_gone && client_gone()) || jail::cancellation_requested()) {
      (void)(*lease)->command({"XDEL", stream, message_id});
      return fleet_error("cancelled", {{"reason", "the client disconnected"}});
    }
    if (milliseconds{clock.elapsed_ms()} > deadline) {
      return give_up(fmt::format("no node answered within {} ms", deadline.count()));
    }
    auto round = fmt::format("{:.3f}", static_cast<double>(kWaitRound.count()) / 1000.0);
    auto popped = (*lease)->command({"BLPOP", done, round});
    if (!popped) {
      why = "cluster degraded while waiting: " + popped.error();
      return std::nullopt;
    }
    if (popped->type == Reply::Type::array && popped->elements.size() == 2) {
      auto body = unseal(m_settings.key, m_settings.ns, "result", job_id, popped->elements[1].str);
      if (!body) {
        say(fmt::format("job {}: an answer that is not the fleet's was ignored: {}", job_id, body.error()));
        continue;
      }
      auto entry = json::parse(*body, nullptr, false);
      auto response = materialize(**lease, entry, action.tree);
      if (!response) {
        return give_up("the answer could not be used: " + response.error());
      }
      (*response)["fleet"] = {{"cache", action.cacheable ? "miss" : "off"},
                              {"node", entry.value("node", "")},
                              {"job", job_id}};
      return with_warnings(std::move(*response));
    }
    if (Clock::now() - last_check >= milliseconds{1'000}) {
      last_check = Clock::now();
      // A job that left the stream unanswered (the store was flushed or
      // restarted empty) will not be answered: twice seen gone, give up.
      auto checks = (*lease)->pipeline({{"XRANGE", stream, message_id, message_id}, {"LLEN", done}});
      if (!checks) {
        why = "cluster degraded while waiting: " + checks.error();
        return std::nullopt;
      }
      bool queued = (*checks)[0].type == Reply::Type::array && !(*checks)[0].elements.empty();
      bool answered = (*checks)[1].integer > 0;
      missing_rounds = (queued || answered) ? 0 : missing_rounds + 1;
      if (missing_rounds >= 2) {
        return give_up("the job left the fleet's queue unanswered");
      }
    }
  }
}

std::expected<void, std::string> Fleet::ensure_group(Redis& redis)
{
  auto stream = key_of("jobs", "stream");
  auto made = redis.command({"XGROUP", "CREATE", stream, kGroup, "0", "MKSTREAM"});
  if (!made) {
    return std::unexpected(made.error());
  }
  if (made->is_error() && !made->str.starts_with("BUSYGROUP")) {
    return std::unexpected("XGROUP CREATE: " + made->str);
  }
  return {};
}

void Fleet::start(RunLocal run_local, std::function<bool()> has_slot, Submit submit)
{
  m_run_local = std::move(run_local);
  m_has_slot = std::move(has_slot);
  m_submit = std::move(submit);
  m_stopping = false;
  m_consumer = std::thread([this] { consume(); });
}

void Fleet::stop()
{
  m_stopping = true;
  m_jobs_changed.notify_all();
  if (m_consumer.joinable()) {
    m_consumer.join();
  }
}

void Fleet::consume()
{
  auto stream = key_of("jobs", "stream");
  auto nodes = key_of("nodes", "alive");
  const auto& me = m_settings.node;
  auto heartbeat_at = Clock::time_point{};
  auto reclaim_at = Clock::now() + m_settings.claim_timeout / 2;
  auto extend_at = Clock::now() + m_settings.claim_timeout / 3;
  std::unique_ptr<Redis> redis;
  bool group_ready = false;
  while (!m_stopping) {
    if (!redis || redis->broken()) {
      if (redis) {
        note_failure("the connection to the store broke");
      }
      group_ready = false;
      auto connected = Redis::connect(m_settings.url, m_settings.connect_timeout, m_settings.io_timeout);
      if (!connected) {
        note_failure(connected.error());
        redis.reset();
        std::unique_lock lock(m_jobs_mutex);
        m_jobs_changed.wait_for(lock, milliseconds{500}, [this] { return m_stopping.load(); });
        continue;
      }
      redis = std::move(*connected);
      note_success();
    }
    if (!group_ready) {
      if (auto made = ensure_group(*redis); !made) {
        say("cluster: " + made.error());
        redis.reset();
        continue;
      }
      group_ready = true;
    }
    auto now = Clock::now();
    if (now >= heartbeat_at) {
      // A node that takes jobs says so; a gateway only checks the store is there.
      auto beat = m_settings.jobs > 0 ? redis->command({"EVAL", kHeartbeatScript, "1", nodes, me})
                                      : redis->command({"PING"});
      if (!beat) {
        continue;
      }
      heartbeat_at = now + milliseconds{1'000};
    }
    if (now >= extend_at) {
      // Jobs this node runs stay claimed: their idle time starts again.
      extend_at = now + m_settings.claim_timeout / 3;
      std::vector<std::string> ids;
      {
        std::lock_guard lock(m_jobs_mutex);
        ids.assign(m_running.begin(), m_running.end());
      }
      if (!ids.empty()) {
        std::vector<std::string_view> argv = {"XCLAIM", stream, kGroup, me, "0"};
        for (const auto& id : ids) {
          argv.push_back(id);
        }
        argv.push_back("JUSTID");
        if (!redis->command(argv)) {
          continue;
        }
      }
    }
    if (m_settings.jobs == 0) {
      std::unique_lock lock(m_jobs_mutex);
      m_jobs_changed.wait_for(lock, milliseconds{500}, [this] { return m_stopping.load(); });
      continue;
    }
    if (!m_has_slot()) {
      // A slot frees when a job's thread has returned it, just after the job
      // says it ended: look again soon rather than wait for the next notice.
      std::unique_lock lock(m_jobs_mutex);
      m_jobs_changed.wait_for(lock, milliseconds{2}, [this] { return m_stopping.load(); });
      continue;
    }
    std::optional<Reply> entry;
    std::string abandon;
    if (now >= reclaim_at) {
      // A job whose node stopped extending its claim (it died) runs here.
      reclaim_at = now + m_settings.claim_timeout / 2;
      auto idle = std::to_string(m_settings.claim_timeout.count());
      auto claimed = redis->command({"XAUTOCLAIM", stream, kGroup, me, idle, "0-0", "COUNT", "1"});
      if (!claimed) {
        continue;
      }
      if (claimed->type == Reply::Type::array && claimed->elements.size() >= 2 &&
          !claimed->elements[1].elements.empty()) {
        entry = claimed->elements[1].elements[0];
        auto id = entry->elements.empty() ? std::string() : entry->elements[0].str;
        say(fmt::format("job {}: claimed again after {} ms without its node", id, idle));
        // A job whose nodes keep dying under it is answered, not run again.
        auto pending = redis->command({"XPENDING", stream, kGroup, id, id, "1"});
        if (pending && pending->type == Reply::Type::array && !pending->elements.empty() &&
            pending->elements[0].elements.size() == 4 && pending->elements[0].elements[3].integer > kMaxDeliveries) {
          abandon = fmt::format("the job was taken {} times and no node answered it (each stopped under it)",
                                pending->elements[0].elements[3].integer - 1);
        }
      }
    }
    if (!entry) {
      auto read = redis->command({"XREADGROUP", "GROUP", kGroup, me, "COUNT", "1", "BLOCK", "500", "STREAMS", stream, ">"});
      if (!read) {
        continue;
      }
      if (read->is_error()) {
        if (read->str.starts_with("NOGROUP")) {
          group_ready = false; // the store was flushed or restarted empty
        } else {
          say("cluster: XREADGROUP: " + read->str);
        }
        continue;
      }
      // [[stream, [[id, [fields]]]]]
      if (read->type == Reply::Type::array && !read->elements.empty() && read->elements[0].elements.size() == 2 &&
          !read->elements[0].elements[1].elements.empty()) {
        entry = read->elements[0].elements[1].elements[0];
      }
    }
    if (!entry || entry->elements.size() != 2) {
      continue;
    }
    auto message_id = entry->elements[0].str;
    auto job_id = string_field(entry->elements[1], "job");
    auto body = string_field(entry->elements[1], "body");
    {
      std::lock_guard lock(m_jobs_mutex);
      m_running.insert(message_id);
    }
    bool taken = m_submit([this, message_id, job_id, body, abandon] {
      run_job(message_id, job_id, body, abandon);
      std::lock_guard lock(m_jobs_mutex);
      m_running.erase(message_id);
      m_jobs_changed.notify_all();
    });
    if (!taken) {
      // Left pending: this node or another claims it again after the timeout.
      std::lock_guard lock(m_jobs_mutex);
      m_running.erase(message_id);
    }
  }
}

void Fleet::run_job(const std::string& message_id, const std::string& job_id, const std::string& sealed,
                    const std::string& abandon)
{
  util::Stopwatch clock;
  auto stream = key_of("jobs", "stream");
  auto lease = acquire(true);
  if (!lease) {
    return; // left pending: claimed again after the timeout
  }
  auto finish_message = [&] { (void)(*lease)->pipeline({{"XACK", stream, kGroup, message_id}, {"XDEL", stream, message_id}}); };
  auto body = unseal(m_settings.key, m_settings.ns, "job", job_id, sealed);
  json job = body ? json::parse(*body, nullptr, false) : json();
  if (!body || !job.is_object() || !job["op"].is_string() || !job["options"].is_object() || !job["args"].is_object()) {
    say(fmt::format("job {}: refused, {}", message_id, body ? "malformed" : body.error()));
    finish_message();
    return;
  }
  auto op = job["op"].get<std::string>();
  say(fmt::format("job {} ({}) for {}: {}", job_id.substr(0, 12), op, job.value("gateway", "?"),
                  abandon.empty() ? "running" : "answered with an error, " + abandon));
  auto tree = tree_from_json(job.value("tree", json::array()));
  json response;
  std::optional<fs::path> workdir;
  fs::path source;
  if (!abandon.empty()) {
    response = fleet_error("compiler_crash", {{"reason", abandon}});
  } else if (op != "compile" && op != "compile_string") {
    response = fleet_error("unknown_operation", {{"op", op}});
  } else if (!tree) {
    response = fleet_error("invalid_sandbox_path", {{"reason", "the job's tree: " + tree.error()}});
  } else {
    // Only the fields a gateway sends: no path of this node comes from the store.
    json request = {{"op", op}, {"options", job["options"]}};
    request["options"].erase("temp_dir");
    if (op == "compile_string") {
      request["code"] = job["args"].value("code", "");
      request["filename"] = job["args"].value("filename", "");
      response = m_run_local(request); // its source travels in the request
    } else if (auto blobs = download(**lease, *tree); !blobs) {
      if ((*lease)->broken()) {
        return; // the store went away: the job stays pending
      }
      response = fleet_error("invalid_sandbox_path", {{"reason", "the job's sources: " + blobs.error()}});
    } else if (auto made = compiler::create_marked_temp_dir(util::default_temp_root()); !made) {
      response = fleet_error("jail_setup_failed", {{"reason", "temp dir: " + made.error()}});
    } else {
      workdir = *made;
      source = *workdir / "src";
      std::error_code ec;
      fs::create_directory(source, ec);
      if (auto written = write_tree(*tree, *blobs, source); !written) {
        response = fleet_error("invalid_sandbox_path", {{"reason", "the job's sources: " + written.error()}});
      } else {
        request["path"] = source.string();
        response = m_run_local(request);
      }
    }
  }
  std::map<std::string, std::string> blobs;
  Tree outputs;
  std::optional<fs::path> result_temp;
  if (response.value("ok", false) && response.contains("temp_dir") && response["temp_dir"].is_string()) {
    result_temp = fs::path(response["temp_dir"].get<std::string>());
    auto read = read_outputs(*result_temp, blobs);
    if (!read) {
      response = fleet_error("compiler_crash", {{"reason", "the outputs: " + read.error()}});
    } else {
      outputs = std::move(*read);
      replace_in_strings(response, result_temp->string(), kTempToken);
    }
  }
  if (!source.empty()) {
    replace_in_strings(response, source.string(), kSourceToken);
  }
  json entry = {{"node", m_settings.node}, {"response", response}, {"outputs", tree_to_json(outputs)}};
  auto text = entry.dump();
  bool published = false;
  if (auto sent = upload(**lease, blobs); sent) {
    auto done = key_of("done", job_id);
    auto answer = seal(m_settings.key, m_settings.ns, "result", job_id, text);
    std::vector<std::vector<std::string_view>> commands = {{"RPUSH", done, answer}};
    auto result_ttl = std::to_string(kResultTtlS);
    commands.push_back({"EXPIRE", done, result_ttl});
    std::string action, ac_key, ac_value, ttl = std::to_string(m_settings.entry_ttl_s);
    if (job.value("cacheable", false) && response.value("ok", false) && job["key"].is_string()) {
      action = job["key"].get<std::string>();
      ac_key = key_of("ac", action);
      ac_value = seal(m_settings.key, m_settings.ns, "ac", action, text);
      commands.push_back({"SET", ac_key, ac_value, "EX", ttl});
    }
    published = static_cast<bool>((*lease)->pipeline(commands));
  }
  if (published) {
    finish_message();
  }
  // Nothing of the job stays on this node once its line is logged.
  if (result_temp) {
    (void)util::remove_tree(*result_temp);
  }
  if (workdir) {
    (void)util::remove_tree(*workdir);
  }
  say(fmt::format("job {} ({}) for {}: {} in {} ms{}", job_id.substr(0, 12), op, job.value("gateway", "?"),
                  response.value("ok", false) ? "ok" : response["error"].value("type", "error"), clock.elapsed_ms(),
                  published ? "" : ", not published (the store went away)"));
}

json probe_store(const RedisUrl& url, const std::string& ns)
{
  json out = {{"url", url.describe()}, {"namespace", ns}};
  auto redis = Redis::connect(url, milliseconds{500}, milliseconds{2'000});
  if (!redis) {
    out["state"] = "degraded";
    out["error"] = redis.error();
    return out;
  }
  auto stream = fmt::format("{}:jobs:stream", ns);
  auto nodes = fmt::format("{}:nodes:alive", ns);
  auto alive = std::string("local t = redis.call('TIME') return redis.call('ZCOUNT', KEYS[1], tonumber(t[1]) - ") +
               std::to_string(kLivenessS) + ", '+inf')";
  auto replies = (*redis)->pipeline({{"INFO", "server"}, {"EVAL", alive, "1", nodes}, {"XLEN", stream}});
  if (!replies || (*replies)[0].is_error()) {
    out["state"] = "degraded";
    out["error"] = replies ? (*replies)[0].str : replies.error();
    return out;
  }
  const auto& info = (*replies)[0].str;
  auto at = info.find("redis_version:");
  out["redis_version"] = at == std::string::npos ? "" : info.substr(at + 14, info.find('\r', at) - at - 14);
  out["nodes_taking_jobs"] = (*replies)[1].integer;
  out["jobs_queued"] = (*replies)[2].integer;
  out["state"] = "ok";
  return out;
}

ScopedRoute::ScopedRoute(const Route* route) : m_previous(t_route) { t_route = route; }
ScopedRoute::~ScopedRoute() { t_route = m_previous; }
const Route* current_route() { return t_route; }

void set_process_fleet(std::shared_ptr<Fleet> fleet)
{
  std::lock_guard lock(g_process_mutex);
  g_process_fleet = std::move(fleet);
}

std::shared_ptr<Fleet> process_fleet()
{
  std::lock_guard lock(g_process_mutex);
  return g_process_fleet;
}

} // namespace sandbox::fleet
