#include "fleet/redis.h"

#include <hiredis/hiredis.h>

#include <sys/time.h>

#include <charconv>

namespace sandbox::fleet {

namespace {

timeval to_timeval(std::chrono::milliseconds ms)
{
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

Reply copy(const redisReply* reply)
{
  Reply out;
  switch (reply->type) {
  case REDIS_REPLY_STRING:
    out.type = Reply::Type::string;
    out.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_STATUS:
    out.type = Reply::Type::status;
    out.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_ERROR:
    out.type = Reply::Type::error;
    out.str.assign(reply->str, reply->len);
    break;
  case REDIS_REPLY_INTEGER:
    out.type = Reply::Type::integer;
    out.integer = reply->integer;
    break;
  case REDIS_REPLY_ARRAY:
    out.type = Reply::Type::array;
    out.elements.reserve(reply->elements);
    for (std::size_t i = 0; i < reply->elements; ++i) {
      out.elements.push_back(copy(reply->element[i]));
    }
    break;
  default:
    out.type = Reply::Type::nil;
  }
  return out;
}

bool parse_int(std::string_view text, int& out)
{
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

} // namespace

std::string RedisUrl::describe() const
{
  auto where = unix_path.empty() ? "redis://" + host + ":" + std::to_string(port) : "redis+unix://" + unix_path;
  return db == 0 ? where : where + (unix_path.empty() ? "/" : "?db=") + std::to_string(db);
}

std::expected<RedisUrl, std::string> parse_redis_url(std::string_view url)
{
  RedisUrl out;
  constexpr std::string_view tcp = "redis://";
  constexpr std::string_view unix_scheme = "redis+unix://";
  if (url.starts_with(unix_scheme)) {
    auto rest = url.substr(unix_scheme.size());
    auto query = rest.find('?');
    out.unix_path = std::string(rest.substr(0, query));
    if (out.unix_path.empty() || out.unix_path.front() != '/') {
      return std::unexpected("a redis+unix URL names an absolute socket path: redis+unix:///PATH");
    }
    if (query != std::string_view::npos) {
      auto q = rest.substr(query + 1);
      if (!q.starts_with("db=") || !parse_int(q.substr(3), out.db) || out.db < 0) {
        return std::unexpected("the only query a redis+unix URL takes is db=N");
      }
    }
    return out;
  }
  if (!url.starts_with(tcp)) {
    return std::unexpected("expected redis://HOST:PORT/DB or redis+unix:///PATH");
  }
  auto rest = url.substr(tcp.size());
  if (rest.find('@') != std::string_view::npos) {
    return std::unexpected("credentials in the URL are not supported; protect Redis by its network and ACLs");
  }
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    auto db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_int(db, out.db) || out.db < 0)) {
      return std::unexpected("the database after the host is a number: redis://HOST:PORT/DB");
    }
  }
  auto colon = hostport.rfind(':');
  if (colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    if (!parse_int(hostport.substr(colon + 1), out.port) || out.port <= 0 || out.port > 65535) {
      return std::unexpected("the port is a number from 1 to 65535");
    }
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) {
    return std::unexpected("the URL names no host");
  }
  out.host = std::string(hostport);
  return out;
}

std::expected<std::unique_ptr<Redis>, std::string> Redis::connect(const RedisUrl& url,
                                                                  std::chrono::milliseconds connect_timeout,
                                                                  std::chrono::milliseconds io_timeout)
{
  auto tv = to_timeval(connect_timeout);
  redisContext* context = url.unix_path.empty() ? redisConnectWithTimeout(url.host.c_str(), url.port, tv)
                                                : redisConnectUnixWithTimeout(url.unix_path.c_str(), tv);
  if (context == nullptr) {
    return std::unexpected("cannot allocate a Redis context");
  }
  std::unique_ptr<Redis> redis(new Redis(context));
  if (context->err != 0) {
    return std::unexpected(url.describe() + ": " + context->errstr);
  }
  if (redisSetTimeout(context, to_timeval(io_timeout)) != REDIS_OK) {
    return std::unexpected(url.describe() + ": cannot set the timeout");
  }
  if (url.db != 0) {
    auto db = std::to_string(url.db);
    auto selected = redis->command({"SELECT", db});
    if (!selected) {
      return std::unexpected(selected.error());
    }
    if (selected->is_error()) {
      return std::unexpected(url.describe() + ": SELECT: " + selected->str);
    }
  }
  return redis;
}

Redis::~Redis() { redisFree(m_context); }

std::string Redis::fail()
{
  m_broken = true;
  return m_context->err != 0 ? std::string(m_context->errstr) : std::string("no reply");
}

std::expected<Reply, std::string> Redis::command(const std::vector<std::string_view>& argv)
{
  auto replies = pipeline({argv});
  if (!replies) {
    return std::unexpected(replies.error());
  }
  return std::move(replies->front());
}

std::expected<std::vector<Reply>, std::string> Redis::pipeline(const std::vector<std::vector<std::string_view>>& commands)
{
  if (m_broken) {
    return std::unexpected("the connection is broken");
  }
  for (const auto& argv : commands) {
    std::vector<const char*> parts;
    std::vector<std::size_t> lengths;
    for (auto arg : argv) {
      parts.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(m_context, static_cast<int>(parts.size()), parts.data(), lengths.data()) != REDIS_OK) {
      return std::unexpected(fail());
    }
  }
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(m_context, &raw) != REDIS_OK || raw == nullptr) {
      return std::unexpected(fail());
    }
    out.push_back(copy(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return out;
}

} // namespace sandbox::fleet
