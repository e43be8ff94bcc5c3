#pragma once
// What the parts of a fleet node share (fleet.cpp: the connection pool and the
// blobs; fleet_gateway.cpp: a request through the fleet; fleet_node.cpp: the
// jobs this node claims and runs): the constants and scripts of the store's
// layout, a few helpers, and the lease of a pooled connection.

#include "fleet/fleet.h"
#include "fleet/redis.h"
#include "util/hash.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace sandbox::fleet::detail {

using nlohmann::json;
using std::chrono::milliseconds;

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

// {"ok": false, "error": {"type": type, ...fields}}
inline json fleet_error(std::string_view type, json fields)
{
  fields["type"] = type;
  return {{"ok", false}, {"error", std::move(fields)}};
}

inline std::string random_hex(std::size_t bytes)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : util::random_bytes(bytes)) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// A stream entry's field by name, or "".
inline std::string string_field(const Reply& entry, std::string_view name)
{
  // A stream entry's fields: [k1, v1, k2, v2, ...]
  for (std::size_t i = 0; i + 1 < entry.elements.size(); i += 2) {
    if (entry.elements[i].str == name) {
      return entry.elements[i + 1].str;
    }
  }
  return {};
}

} // namespace sandbox::fleet::detail

namespace sandbox::fleet {

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

} // namespace sandbox::fleet
