#include "cli/engine_server.h"

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/engine_wire.h"
#include "compiler/in_process_compiler.h"
#include "compiler/incremental_compile.h"
#include "jail/cancel.h"
#include "util/fd.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

extern char** environ;

namespace sandbox::cli::engine {

namespace {

std::int64_t now_ms()
{
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Server {
public:
  Server(const ServerSettings& settings, std::ostream& log)
      : m_settings(settings), m_log(log), m_identity(identity()),
        m_contract(environment_contract(environ)), m_started(std::chrono::system_clock::now())
  {
  }

  int run();

private:
  void line(const std::string& text)
  {
    std::lock_guard lock(m_log_mutex);
    m_log << fmt::format("sandbox daemon[{}]: {}\n", ::getpid(), text) << std::flush;
  }

  bool owns_socket() const
  {
    struct stat st {};
    return ::lstat(m_settings.socket.c_str(), &st) == 0 && st.st_ino == m_inode &&
           st.st_dev == m_device;
  }

  // The socket is removed once the engine stops taking requests, so the next
  // client starts a new engine instead of reaching this one.
  void stop_taking_requests()
  {
    std::lock_guard lock(m_mutex);
    if (!m_stopping.exchange(true) && owns_socket()) {
      ::unlink(m_settings.socket.c_str());
    }
  }

  util::Fd listen_socket();
  void serve(util::Fd client, ucred peer);
  void serve_request(int fd, const Request& request, const ucred& peer);
  std::string status_json() const;

  ServerSettings m_settings;
  std::ostream& m_log;
  std::mutex m_log_mutex;
  std::string m_identity;
  std::vector<std::string> m_contract;
  std::chrono::system_clock::time_point m_started;
  ino_t m_inode = 0;
  dev_t m_device = 0;
  std::atomic<bool> m_stopping{false};
  std::atomic<std::uint64_t> m_commands{0};
  std::mutex m_mutex; // guards what follows
  std::condition_variable m_changed;
  int m_active = 0;
  std::int64_t m_last_activity = now_ms();
  std::set<std::shared_ptr<jail::CancelToken>> m_running;
  std::vector<util::Fd> m_stop_waiters; // closed once the engine has stopped
};

util::Fd Server::listen_socket()
{
  util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  std::string temporary = fmt::format("{}.{}", m_settings.socket, ::getpid());
  sockaddr_un address{};
  if (!fd || temporary.size() >= sizeof address.sun_path) {
    line("cannot create the socket " + temporary);
    return {};
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, temporary.c_str(), temporary.size() + 1);
  ::unlink(temporary.c_str());
  auto mask = ::umask(077);
  int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::umask(mask);
  struct stat st {};
  if (bound != 0 || ::chmod(temporary.c_str(), 0600) != 0 || ::listen(fd.get(), 128) != 0 ||
      ::lstat(temporary.c_str(), &st) != 0 ||
      ::rename(temporary.c_str(), m_settings.socket.c_str()) != 0) {
    line(fmt::format("cannot listen on {}: {}", m_settings.socket, std::strerror(errno)));
    ::unlink(temporary.c_str());
    return {};
  }
  m_inode = st.st_ino;
  m_device = st.st_dev;
  return fd;
}

std::string Server::status_json() const
{
  return nlohmann::json{{"pid", ::getpid()},
                        {"version", SANDBOX_VERSION},
                        {"identity", m_identity},
                        {"socket", m_settings.socket},
                        {"idle_exit", m_settings.idle_exit_seconds},
                        {"uptime_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now() - m_started)
                                          .count()},
                        {"commands", m_commands.load()},
                        {"watch", compiler::watched_trees_json()},
                        {"workers", compiler::worker_pool_json()}}
      .dump();
}

void Server::serve_request(int fd, const Request& request, const ucred& peer)
{
  // The client's working directory and umask, for this thread only.
  if (::unshare(CLONE_FS) != 0 || ::chdir(request.cwd.c_str()) != 0) {
    send_frame(fd, frame::refused,
               fmt::format("cannot enter {}: {}", request.cwd, std::strerror(errno)));
    return;
  }
  ::umask(request.umask);
  auto token = std::make_shared<jail::CancelToken>();
  {
    std::lock_guard lock(m_mutex);
    m_running.insert(token);
  }
  send_frame(fd, frame::accepted, {});
  // A client that hangs up cancels the command's jobs.
  util::Fd done(::eventfd(0, EFD_CLOEXEC));
  std::thread watcher([fd, &done, token] {
    pollfd fds[2] = {{fd, POLLIN | POLLRDHUP, 0}, {done.get(), POLLIN, 0}};
    while (::poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[0].revents != 0 && fds[1].revents == 0) {
      token->cancel();
    }
  });
  std::istringstream input(request.input.value_or(std::string()));
  std::ostringstream out;
  std::ostringstream err;
  std::vector<std::string> args = request.argv;
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  auto start = now_ms();
  int status = kExitFailed;
  std::optional<std::string> failure;
  {
    jail::ScopedCancellation cancellation(token);
    try {
      status = run_command(static_cast<int>(args.size()), argv.data(),
                           Io{&input, &out, &err, request.out_terminal});
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(done.get(), &one, sizeof one);
  watcher.join();
  {
    std::lock_guard lock(m_mutex);
    m_running.erase(token);
  }
  ++m_commands;
  std::string command = args.size() > 1 ? args[1] : "";
  if (failure) {
    line(fmt::format("pid {}: {}: {}", peer.pid, command, *failure));
    send_frame(fd, frame::refused, *failure);
    return;
  }
  line(fmt::format("pid {}: {} exit {} ({} ms{})", peer.pid, command, status, now_ms() - start,
                   token->cancelled() ? ", cancelled: the client hung up" : ""));
  if (send_frame(fd, frame::err, err.str()) && send_frame(fd, frame::out, out.str())) {
    send_frame(fd, frame::exit, std::to_string(status));
  }
}

void Server::serve(util::Fd client, ucred peer)
{
  timeval timeout{10, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char type = 0;
  std::string payload;
  std::optional<Request> request;
  if (read_frame(client.get(), type, payload) && type == frame::request) {
    request = decode(payload);
  }
  timeout = {0, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  bool wait_for_stop = false;
  if (!request) {
    send_frame(client.get(), frame::refused, "malformed request");
  } else if (m_stopping) {
    // Closed unanswered: the client starts a new engine.
  } else if (request->kind == "run" && request->identity != m_identity) {
    line("a client of another version (" + request->identity + ") connected: stopping");
    stop_taking_requests();
    send_frame(client.get(), frame::version, m_identity);
  } else if (request->kind == "run" && request->environment != m_contract) {
    send_frame(client.get(), frame::refused, "the engine was started with another environment");
  } else if (request->kind == "status") {
    send_frame(client.get(), frame::status, status_json());
    send_frame(client.get(), frame::exit, "0");
  } else if (request->kind == "stop") {
    line(fmt::format("pid {}: stop", peer.pid));
    send_frame(client.get(), frame::status, status_json());
    stop_taking_requests();
    wait_for_stop = true;
  } else if (request->kind == "run") {
    serve_request(client.get(), *request, peer);
  } else {
    send_frame(client.get(), frame::refused, "unknown request " + request->kind);
  }
  std::lock_guard lock(m_mutex);
  if (wait_for_stop) {
    m_stop_waiters.push_back(std::move(client));
  }
  --m_active;
  m_last_activity = now_ms();
  m_changed.notify_all();
}

int Server::run()
{
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  util::Fd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC));
  auto listener = listen_socket();
  if (!listener || !signal_fd) {
    return kExitFailed;
  }
  line(fmt::format("listening on {} ({}, idle exit {} s)", m_settings.socket, m_identity,
                   m_settings.idle_exit_seconds));
  compiler::WorkerPoolSettings pool;
  pool.prestart = std::min(m_settings.prestart, pool.size);
  // A warm worker waits as long as the engine does, not booted again each minute.
  pool.idle_timeout = std::chrono::seconds(std::max<long>(60, m_settings.idle_exit_seconds > 0
                                                                  ? m_settings.idle_exit_seconds
                                                                  : kDefaultIdleExitSeconds));
  compiler::configure_worker_pool(pool);
  compiler::watch_compiled_trees(true);
  bool signalled = false;
  while (!m_stopping) {
    pollfd fds[2] = {{listener.get(), POLLIN, 0}, {signal_fd.get(), POLLIN, 0}};
    int ready = ::poll(fds, 2, 250);
    if (ready < 0 && errno != EINTR) {
      line(fmt::format("poll: {}", std::strerror(errno)));
      break;
    }
    if (m_stopping) {
      break;
    }
    if (ready > 0 && fds[1].revents != 0) {
      signalfd_siginfo info{};
      [[maybe_unused]] auto n = ::read(signal_fd.get(), &info, sizeof info);
      line(fmt::format("signal {}: stopping", info.ssi_signo));
      signalled = true;
      break;
    }
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
      util::Fd client(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      ucred peer{};
      socklen_t size = sizeof peer;
      if (client && ::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) == 0 &&
          peer.uid == ::geteuid()) {
        std::lock_guard lock(m_mutex);
        ++m_active;
        std::thread(&Server::serve, this, std::move(client), peer).detach();
      }
      continue;
    }
    std::unique_lock lock(m_mutex);
    if (m_settings.idle_exit_seconds > 0 && m_active == 0 &&
        now_ms() - m_last_activity >= m_settings.idle_exit_seconds * 1000) {
      lock.unlock();
      line(fmt::format("idle for {} s: exiting", m_settings.idle_exit_seconds));
      break;
    }
    lock.unlock();
    if (!owns_socket()) {
      line("the socket was removed or replaced: exiting");
      break;
    }
  }
  stop_taking_requests();
  listener.reset();
  std::unique_lock lock(m_mutex);
  if (signalled) {
    for (const auto& token : m_running) {
      token->cancel();
    }
  }
  m_changed.wait(lock, [this] { return m_active == 0; });
  lock.unlock();
  compiler::stop_watching_trees();
  compiler::shutdown_worker_pool();
  line("stopped");
  lock.lock();
  m_stop_waiters.clear();
  return kExitOk;
}

} // namespace

int run_server(const ServerSettings& settings, std::ostream& log)
{
  Server server(settings, log);
  return server.run();
}

} // namespace sandbox::cli::engine
