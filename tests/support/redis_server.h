#pragma once
// A real redis-server of the test's own: on a unix socket in a directory the
// test owns, no TCP port (--port 0), no persistence, stopped (or killed) by
// the test. Never a shared server.

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sandbox::test {

class RedisServer {
public:
  explicit RedisServer(std::filesystem::path dir) : m_dir(std::move(dir)) {}
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() { stop(SIGKILL); }

  // The redis-server found in PATH or the usual places, or empty.
  static std::string binary()
  {
    for (const char* candidate : {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"}) {
      if (::access(candidate, X_OK) == 0) {
        return candidate;
      }
    }
    return {};
  }

  [[nodiscard]] std::filesystem::path socket() const { return m_dir / "redis.sock"; }
  [[nodiscard]] std::string url() const { return "redis+unix://" + socket().string(); }

  // Starts it and waits until it accepts connections.
  bool start()
  {
    std::filesystem::create_directories(m_dir);
    std::filesystem::remove(socket());
    std::vector<std::string> args = {binary(), "--port", "0", "--unixsocket", socket().string(),
                                     "--unixsocketperm", "700", "--dir", m_dir.string(), "--save", "",
                                     "--appendonly", "no", "--logfile", (m_dir / "redis.log").string()};
    std::vector<char*> argv;
    for (auto& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    if (args[0].empty() || posix_spawn(&m_pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      m_pid = -1;
      return false;
    }
    for (int i = 0; i < 200; ++i) {
      if (accepts()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

  void stop(int signal = SIGTERM)
  {
    if (m_pid > 0) {
      ::kill(m_pid, signal);
      ::waitpid(m_pid, nullptr, 0);
      m_pid = -1;
    }
  }

  [[nodiscard]] bool accepts() const
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket().c_str(), sizeof address.sun_path - 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
  }

private:
  std::filesystem::path m_dir;
  pid_t m_pid = -1;
};

} // namespace sandbox::test
