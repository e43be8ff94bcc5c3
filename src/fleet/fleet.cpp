#include "fleet/fleet_internal.h"

#include "compiler/engine_state.h"
#include "jail/cancel.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/time.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <set>

namespace sandbox::fleet {

using namespace detail;
using Clock = std::chrono::steady_clock;

namespace {

thread_local const Route* t_route = nullptr;
std::mutex g_process_mutex;
std::shared_ptr<Fleet> g_process_fleet;

std::string node_name()
{
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return fmt::format("{}-{}-{}", host, ::getpid(), random_hex(3));
}

} // namespace

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
  std::set<std::string> distinct;
  for (const auto& file : tree.files) {
    if (file.kind != 'd') {
      distinct.insert(file.digest);
    }
  }
  std::vector<std::string> wanted(distinct.begin(), distinct.end());
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
