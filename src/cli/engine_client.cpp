#include "cli/engine_client.h"

#include "cli/cli.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

extern char** environ;

namespace sandbox::cli::engine {

namespace {

std::string errno_text(const std::string& what)
{
  return what + ": " + std::strerror(errno);
}

void sleep_ms(long ms)
{
  timespec pause{ms / 1000, (ms % 1000) * 1'000'000};
  ::nanosleep(&pause, nullptr);
}

std::int64_t now_ms()
{
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

// `sandbox daemon run` in its own session, not a child of this process (a
// double fork), with the environment contract as its whole environment.
std::expected<void, std::string> spawn_engine(const Location& where, long idle_exit_seconds)
{
  std::string idle = std::to_string(idle_exit_seconds);
  std::string self(4096, '\0');
  auto length = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
  self.resize(length > 0 ? static_cast<std::size_t>(length) : 0);
  if (self.empty()) {
    self = "sandbox";
  }
  std::vector<std::string> args = {self,         "daemon",      "run", "--socket",
                                   where.socket, "--idle-exit", idle};
  auto env = environment_contract(environ);
  std::vector<char*> c_args;
  std::vector<char*> c_env;
  for (auto& arg : args) {
    c_args.push_back(arg.data());
  }
  for (auto& item : env) {
    c_env.push_back(item.data());
  }
  c_args.push_back(nullptr);
  c_env.push_back(nullptr);
  // Appended to (an engine that is stopping may still write to it), and
  // emptied once it passes 1 MiB.
  int log = ::open(where.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  struct stat st {};
  if (log >= 0 && ::fstat(log, &st) == 0 && st.st_size > (1 << 20)) {
    [[maybe_unused]] int emptied = ::ftruncate(log, 0);
  }
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    if (::fork() != 0) {
      ::_exit(0);
    }
    ::dup2(null, 0);
    ::dup2(log >= 0 ? log : null, 1);
    ::dup2(log >= 0 ? log : null, 2);
    ::close_range(3, ~0U, 0);
    if (::chdir("/") != 0) {
      ::_exit(126);
    }
    // The binary this process runs, even if its path was replaced since.
    ::execve("/proc/self/exe", c_args.data(), c_env.data());
    ::_exit(127);
  }
  int saved = errno;
  if (log >= 0) {
    ::close(log);
  }
  if (null >= 0) {
    ::close(null);
  }
  if (pid < 0) {
    errno = saved;
    return std::unexpected(errno_text("fork"));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {};
}

} // namespace

std::expected<util::Fd, std::string> connect_engine(const Location& where)
{
  struct stat st {};
  if (::lstat(where.socket.c_str(), &st) != 0) {
    return std::unexpected(errno_text(where.socket));
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
    return std::unexpected(where.socket + " is not a socket of this user");
  }
  util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return std::unexpected(errno_text("socket"));
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, where.socket.c_str(), where.socket.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return std::unexpected(errno_text(where.socket));
  }
  ucred peer{};
  socklen_t size = sizeof peer;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 ||
      peer.uid != ::geteuid()) {
    return std::unexpected(where.socket + ": the engine is not this user's");
  }
  return fd;
}

std::expected<util::Fd, std::string> connect_or_start(const Location& where, long idle_exit_seconds)
{
  if (auto fd = connect_engine(where)) {
    return fd;
  }
  util::Fd lock(::open(where.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock) {
    return std::unexpected(errno_text(where.lock));
  }
  // Whoever holds the lock is starting an engine and gives up within 10 s.
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return std::unexpected(errno_text(where.lock));
    }
  }
  if (auto fd = connect_engine(where)) {
    return fd;
  }
  struct stat st {};
  if (::lstat(where.socket.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
      return std::unexpected(where.socket + " is not a socket of this user");
    }
    ::unlink(where.socket.c_str()); // stale: nothing answers on it
  }
  if (auto spawned = spawn_engine(where, idle_exit_seconds); !spawned) {
    return std::unexpected(spawned.error());
  }
  auto deadline = now_ms() + 10'000;
  std::string last;
  for (long pause = 1; now_ms() < deadline; pause = pause < 20 ? pause * 2 : pause) {
    sleep_ms(pause);
    auto fd = connect_engine(where);
    if (fd) {
      return fd;
    }
    last = fd.error();
  }
  return std::unexpected("the engine did not start within 10 s (" + last + "; log: " + where.log +
                         ")");
}

Answer exchange(int fd, const Request& request)
{
  Answer answer;
  if (!send_frame(fd, frame::request, encode(request))) {
    return answer;
  }
  char type = 0;
  std::string payload;
  while (read_frame(fd, type, payload)) {
    switch (type) {
    case frame::accepted: answer.accepted = true; break;
    case frame::out: answer.out += payload; break;
    case frame::err: answer.err += payload; break;
    case frame::status: answer.status = payload; break;
    case frame::version: answer.other_version = payload; return answer;
    case frame::refused: answer.refused = payload; return answer;
    case frame::exit: answer.exit_status = std::atoi(payload.c_str()); return answer;
    default: return answer;
    }
  }
  return answer;
}

long idle_exit_from_environment()
{
  const char* text = std::getenv(kIdleExitVariable);
  if (text == nullptr || *text == '\0') {
    return kDefaultIdleExitSeconds;
  }
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  return end != nullptr && *end == '\0' && value >= 0 ? value : kDefaultIdleExitSeconds;
}

Request make_request(const std::string& kind)
{
  Request request;
  request.kind = kind;
  request.identity = identity();
  request.environment = environment_contract(environ);
  std::string cwd(4096, '\0');
  if (::getcwd(cwd.data(), cwd.size()) != nullptr) {
    cwd.resize(std::strlen(cwd.c_str()));
    request.cwd = cwd;
  }
  auto mask = ::umask(022);
  ::umask(mask);
  request.umask = mask;
  request.out_terminal = ::isatty(STDOUT_FILENO) == 1;
  return request;
}

} // namespace sandbox::cli::engine
