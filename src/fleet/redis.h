#pragma once
// A Redis connection (hiredis) as the fleet uses it: a URL
// (redis://HOST:PORT/DB or redis+unix:///PATH?db=N), a connect and a per-read
// timeout so that no caller ever waits on the store past a bound, commands as
// binary-safe argument vectors, pipelines, and replies copied out of hiredis's
// objects. A connection that saw an I/O or protocol error is broken for good;
// the owner drops it and connects again.

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace sandbox::fleet {

struct RedisUrl {
  std::string host; // empty for a unix socket
  int port = 6379;
  std::string unix_path;
  int db = 0;
  [[nodiscard]] std::string describe() const;
};

// Parses redis://HOST[:PORT][/DB] and redis+unix:///PATH[?db=N].
std::expected<RedisUrl, std::string> parse_redis_url(std::string_view url);

struct Reply {
  enum class Type { nil, string, status, integer, array, error };
  Type type = Type::nil;
  std::string str; // string, status, error
  long long integer = 0;
  std::vector<Reply> elements;

  [[nodiscard]] bool is_nil() const { return type == Type::nil; }
  [[nodiscard]] bool is_error() const { return type == Type::error; }
};

class Redis {
public:
  // Connects (within connect_timeout) and selects the URL's database; every
  // later read waits at most io_timeout.
  static std::expected<std::unique_ptr<Redis>, std::string> connect(const RedisUrl& url,
                                                                    std::chrono::milliseconds connect_timeout,
                                                                    std::chrono::milliseconds io_timeout);
  ~Redis();
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;

  // One command. An error reply is a Reply of type error, not a failure: a
  // failure (unexpected, with the reason) means the connection is broken.
  std::expected<Reply, std::string> command(const std::vector<std::string_view>& argv);
  // Several commands sent at once, their replies in order.
  std::expected<std::vector<Reply>, std::string> pipeline(const std::vector<std::vector<std::string_view>>& commands);

  [[nodiscard]] bool broken() const { return m_broken; }

private:
  explicit Redis(redisContext* context) : m_context(context) {}
  std::string fail();

  redisContext* m_context;
  bool m_broken = false;
};

} // namespace sandbox::fleet
