// The jobs of the fleet this node claims and runs: the consumer thread
// (heartbeat, claims renewed, silent nodes' jobs reclaimed) and one job from
// its sources to its published answer; the store's check for `sandbox doctor`.

#include "fleet/fleet_internal.h"

#include "compiler/engine_state.h"
#include "jail/cancel.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/time.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>

namespace sandbox::fleet {

using namespace detail;
using Clock = std::chrono::steady_clock;

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

} // namespace sandbox::fleet
