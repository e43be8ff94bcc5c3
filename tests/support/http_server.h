#pragma once
// A small HTTP/1.1 server for tests: 127.0.0.1 on an ephemeral port, one
// thread per connection, GET only, Connection: close. It serves files under a
// root directory ("/tarballs/x-1.0.tar" -> ROOT/tarballs/x-1.0.tar) and
// programmable routes that misbehave on purpose (redirects anywhere, error
// statuses, stalls, bodies without or with a false Content-Length). It counts
// requests per path. The destructor stops it promptly: every wait is woken and
// every open connection is shut down before the threads are joined.

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace sandbox::testing {

// What a programmable route answers.
struct HttpRoute {
  int status = 200;
  std::string location;           // a Location header when not empty
  std::string body;               // sent right after the headers
  std::uint64_t filler_bytes = 0; // then this many 'x' bytes, streamed
  // Nothing: the true length (body + filler). A value: announced as is,
  // whatever is actually sent.
  std::optional<std::uint64_t> content_length;
  bool omit_content_length = false; // the body ends when the connection closes
  bool chunked = false;             // Transfer-Encoding: chunked (no Content-Length)
  // A pause after `body`, before the filler (cut short when the server stops).
  std::chrono::milliseconds stall{0};
  // When not zero, the filler is sent one byte at a time with this pause between bytes.
  std::chrono::milliseconds drip_interval{0};
};

class HttpServer {
public:
  // Files are served from `root` (empty: routes only). Throws std::runtime_error
  // when the socket cannot be set up, which a test reports as a failure.
  explicit HttpServer(std::filesystem::path root = {}) : m_root(std::move(root))
  {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::runtime_error("http server: pipe2 failed");
    }
    m_wake_read = fds[0];
    m_wake_write = fds[1];
    m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (m_listen < 0 || ::bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(m_listen, 128) != 0 ||
        ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close_fds();
      throw std::runtime_error("http server: cannot listen on 127.0.0.1");
    }
    m_port = ntohs(addr.sin_port);
    m_acceptor = std::thread([this] { accept_loop(); });
  }

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  ~HttpServer() { stop(); }

  // Stops accepting, wakes every stalled response, shuts down every open
  // connection and joins all threads. Idempotent; the destructor calls it.
  void stop()
  {
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping) {
        return;
      }
      m_stopping = true;
      for (int fd : m_open) {
        ::shutdown(fd, SHUT_RDWR);
      }
    }
    m_wake.notify_all();
    char byte = 1;
    [[maybe_unused]] auto ignored = ::write(m_wake_write, &byte, 1);
    if (m_acceptor.joinable()) {
      m_acceptor.join();
    }
    std::list<Worker> workers;
    {
      std::lock_guard lock(m_mutex);
      workers.swap(m_workers);
    }
    for (auto& worker : workers) {
      worker.thread.join();
    }
    close_fds();
  }

  [[nodiscard]] std::uint16_t port() const noexcept { return m_port; }
  [[nodiscard]] const std::filesystem::path& root() const noexcept { return m_root; }
  // "http://127.0.0.1:PORT" followed by `path` (which should start with '/').
  [[nodiscard]] std::string url(std::string_view path = "/") const
  {
    return "http://127.0.0.1:" + std::to_string(m_port) + std::string(path);
  }

  // A route answers requests for exactly `path` (the query string is ignored)
  // and takes precedence over files. Setting it again replaces it.
  void route(const std::string& path, HttpRoute response)
  {
    std::lock_guard lock(m_mutex);
    m_routes[path] = std::move(response);
  }
  void redirect(const std::string& path, std::string location, int status = 302)
  {
    HttpRoute r;
    r.status = status;
    r.location = std::move(location);
    route(path, std::move(r));
  }
  void status(const std::string& path, int code, std::string body = "error\n")
  {
    HttpRoute r;
    r.status = code;
    r.body = std::move(body);
    route(path, std::move(r));
  }
  void body(const std::string& path, std::string bytes)
  {
    HttpRoute r;
    r.body = std::move(bytes);
    route(path, std::move(r));
  }
  // Sends the headers (announcing `announced` bytes) and `first`, then stalls.
  void stall(const std::string& path, std::chrono::milliseconds pause,
             std::uint64_t announced = 1 << 20, std::string first = "x")
  {
    HttpRoute r;
    r.content_length = announced;
    r.body = std::move(first);
    r.stall = pause;
    route(path, std::move(r));
  }
  // `bytes` bytes sent one at a time, `interval` apart.
  void drip(const std::string& path, std::uint64_t bytes, std::chrono::milliseconds interval)
  {
    HttpRoute r;
    r.filler_bytes = bytes;
    r.drip_interval = interval;
    route(path, std::move(r));
  }
  // `bytes` bytes with no length announced: ended by closing the connection,
  // or chunked when `chunked` is true.
  void unsized(const std::string& path, std::uint64_t bytes, bool chunked = false)
  {
    HttpRoute r;
    r.filler_bytes = bytes;
    r.omit_content_length = !chunked;
    r.chunked = chunked;
    route(path, std::move(r));
  }
  // Announces `announced` bytes and sends `sent` bytes (then closes).
  void lying_length(const std::string& path, std::uint64_t announced, std::uint64_t sent)
  {
    HttpRoute r;
    r.filler_bytes = sent;
    r.content_length = announced;
    route(path, std::move(r));
  }

  // Requests received for `path` (query string ignored), whatever the answer.
  [[nodiscard]] std::size_t requests(const std::string& path) const
  {
    std::lock_guard lock(m_mutex);
    auto it = m_counts.find(path);
    return it == m_counts.end() ? 0 : it->second;
  }
  // All requests with a parsable request line.
  [[nodiscard]] std::size_t total_requests() const
  {
    std::lock_guard lock(m_mutex);
    std::size_t total = 0;
    for (const auto& [path, count] : m_counts) {
      total += count;
    }
    return total;
  }
  // Connections accepted, including ones that never sent a request.
  [[nodiscard]] std::size_t connections() const { return m_connections.load(); }

private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  static constexpr std::size_t k_max_header = 16 * 1024;
  static constexpr int k_read_timeout_ms = 10'000;

  void close_fds()
  {
    for (int* fd : {&m_listen, &m_wake_read, &m_wake_write}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
  }

  bool stopping() const
  {
    std::lock_guard lock(m_mutex);
    return m_stopping;
  }

  void accept_loop()
  {
    while (true) {
      pollfd fds[2] = {{m_listen, POLLIN, 0}, {m_wake_read, POLLIN, 0}};
      int ready = ::poll(fds, 2, -1);
      if (ready < 0 && errno == EINTR) {
        continue;
      }
      if (ready < 0 || (fds[1].revents != 0) || stopping()) {
        return;
      }
      if ((fds[0].revents & POLLIN) == 0) {
        continue;
      }
      int client = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        continue; // ECONNABORTED, EMFILE...: the peer retries or the test fails
      }
      ++m_connections;
      std::lock_guard lock(m_mutex);
      if (m_stopping) {
        ::close(client);
        return;
      }
      reap_finished_locked();
      m_open.insert(client);
      auto done = std::make_shared<std::atomic<bool>>(false);
      m_workers.push_back(Worker{std::thread([this, client, done] {
                                   serve(client);
                                   {
                                     std::lock_guard inner(m_mutex);
                                     m_open.erase(client);
                                   }
                                   ::close(client);
                                   done->store(true);
                                 }),
                                 done});
    }
  }

  // Joins workers that have finished, so a long-lived server does not pile up threads.
  void reap_finished_locked()
  {
    for (auto it = m_workers.begin(); it != m_workers.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = m_workers.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Waits up to `pause`; false when the server is stopping.
  bool pause_for(std::chrono::milliseconds pause)
  {
    std::unique_lock lock(m_mutex);
    return !m_wake.wait_for(lock, pause, [this] { return m_stopping; });
  }

  static bool send_all(int fd, std::string_view data)
  {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads up to the end of the request headers; nothing on a timeout, an
  // early close, oversized headers or a stop.
  std::optional<std::string> read_head(int fd)
  {
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (head.size() > k_max_header) {
        return std::nullopt;
      }
      pollfd fds[2] = {{fd, POLLIN, 0}, {m_wake_read, POLLIN, 0}};
      int ready = ::poll(fds, 2, k_read_timeout_ms);
      if (ready < 0 && errno == EINTR) {
        continue;
      }
      if (ready <= 0 || fds[1].revents != 0) {
        return std::nullopt;
      }
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return std::nullopt;
      }
      head.append(buffer, static_cast<std::size_t>(n));
    }
    return head;
  }

  static std::string reason(int status)
  {
    switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
  }

  static std::string head_for(int status, std::optional<std::uint64_t> length,
                              const std::string& location = {}, bool chunked = false)
  {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
    head += "Connection: close\r\nContent-Type: application/octet-stream\r\n";
    if (length) {
      head += "Content-Length: " + std::to_string(*length) + "\r\n";
    }
    if (chunked) {
      head += "Transfer-Encoding: chunked\r\n";
    }
    if (!location.empty()) {
      head += "Location: " + location + "\r\n";
    }
    return head + "\r\n";
  }

  static bool send_simple(int fd, int status, std::string_view text)
  {
    return send_all(fd, head_for(status, text.size()) + std::string(text));
  }

  void serve(int fd)
  {
    auto head = read_head(fd);
    if (!head) {
      return;
    }
    auto line_end = head->find("\r\n");
    std::string_view line(head->data(), line_end);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      send_simple(fd, 400, "bad request\n");
      finish(fd);
      return;
    }
    std::string method(line.substr(0, sp1));
    std::string target(line.substr(sp1 + 1, sp2 - sp1 - 1));
    std::string path = target.substr(0, target.find('?'));
    std::optional<HttpRoute> found;
    {
      std::lock_guard lock(m_mutex);
      ++m_counts[path];
      if (auto it = m_routes.find(path); it != m_routes.end()) {
        found = it->second;
      }
    }
    if (method != "GET") {
      send_simple(fd, 405, "GET only\n");
    } else if (found) {
      send_route(fd, *found);
    } else {
      send_file(fd, path);
    }
    finish(fd);
  }

  void send_route(int fd, const HttpRoute& r)
  {
    std::optional<std::uint64_t> length = r.content_length;
    if (!length && !r.omit_content_length && !r.chunked) {
      length = r.body.size() + r.filler_bytes;
    }
    if (!send_all(fd, head_for(r.status, length, r.location, r.chunked))) {
      return;
    }
    auto send_data = [&](std::string_view data) {
      if (data.empty()) {
        return true;
      }
      if (!r.chunked) {
        return send_all(fd, data);
      }
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", data.size());
      return send_all(fd, size) && send_all(fd, data) && send_all(fd, "\r\n");
    };
    if (!send_data(r.body)) {
      return;
    }
    if (r.stall.count() > 0 && !pause_for(r.stall)) {
      return;
    }
    std::string block(r.drip_interval.count() > 0 ? 1 : 64 * 1024, 'x');
    for (std::uint64_t left = r.filler_bytes; left > 0;) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, block.size()));
      if (!send_data(std::string_view(block).substr(0, n))) {
        return;
      }
      left -= n;
      if (r.drip_interval.count() > 0 && left > 0 && !pause_for(r.drip_interval)) {
        return;
      }
    }
    if (r.chunked) {
      send_all(fd, "0\r\n\r\n");
    }
  }

  void send_file(int fd, const std::string& path)
  {
    namespace fs = std::filesystem;
    // Only plain relative paths below the root: no "..", no empty root.
    fs::path relative = fs::path(path).relative_path();
    bool safe = !m_root.empty() && !path.empty() && path.front() == '/' &&
                path.find('\0') == std::string::npos;
    for (const auto& part : relative) {
      safe = safe && part != "..";
    }
    int file = safe ? ::open((m_root / relative).c_str(), O_RDONLY | O_CLOEXEC) : -1;
    struct stat st {};
    if (file < 0 || ::fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (file >= 0) {
        ::close(file);
      }
      send_simple(fd, 404, "not found\n");
      return;
    }
    if (send_all(fd, head_for(200, static_cast<std::uint64_t>(st.st_size)))) {
      char buffer[64 * 1024];
      ssize_t n = 0;
      while ((n = ::read(file, buffer, sizeof buffer)) > 0 &&
             send_all(fd, std::string_view(buffer, static_cast<std::size_t>(n)))) {
      }
    }
    ::close(file);
  }

  // Half-closes and drains what the client still sends (briefly), so the
  // close does not reset the connection before the client has read the answer.
  void finish(int fd)
  {
    ::shutdown(fd, SHUT_WR);
    char buffer[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd fds[2] = {{fd, POLLIN, 0}, {m_wake_read, POLLIN, 0}};
      if (::poll(fds, 2, 100) < 0 && errno != EINTR) {
        return;
      }
      if (fds[1].revents != 0) {
        return;
      }
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
          ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT) <= 0) {
        return;
      }
    }
  }

  std::filesystem::path m_root;
  int m_listen = -1;
  int m_wake_read = -1;
  int m_wake_write = -1;
  std::uint16_t m_port = 0;
  std::atomic<std::size_t> m_connections{0};

  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stopping = false;
  std::map<std::string, HttpRoute> m_routes;
  std::map<std::string, std::size_t> m_counts;
  std::set<int> m_open;
  std::list<Worker> m_workers;
  std::thread m_acceptor;
};

// A port on 127.0.0.1 where connections are refused: a socket bound to it but
// never listening, held for this object's lifetime so no one else takes it.
class ClosedPort {
public:
  ClosedPort()
  {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (m_fd >= 0) {
        ::close(m_fd);
      }
      throw std::runtime_error("closed port: cannot bind 127.0.0.1");
    }
    m_port = ntohs(addr.sin_port);
  }
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  ~ClosedPort() { ::close(m_fd); }

  [[nodiscard]] std::uint16_t port() const noexcept { return m_port; }
  [[nodiscard]] std::string url(std::string_view path = "/") const
  {
    return "http://127.0.0.1:" + std::to_string(m_port) + std::string(path);
  }

private:
  int m_fd = -1;
  std::uint16_t m_port = 0;
};

} // namespace sandbox::testing
