// A request through the fleet, at the node that took it: the shared cache,
// else the job on the stream and the wait for its answer.

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

} // namespace sandbox::fleet
