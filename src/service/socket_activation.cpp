#include "service/socket_activation.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace sandbox::service {

std::expected<std::optional<util::Fd>, std::string> activated_socket()
{
  constexpr int kFirstPassedFd = 3; // SD_LISTEN_FDS_START
  const char* pid_env = std::getenv("LISTEN_PID");
  const char* fds_env = std::getenv("LISTEN_FDS");
  std::string pid_text = pid_env != nullptr ? pid_env : "";
  std::string fds_text = fds_env != nullptr ? fds_env : "";
  for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) {
    ::unsetenv(name);
  }
  if (pid_text.empty() || fds_text.empty()) {
    return std::nullopt;
  }
  auto number = [](const std::string& text) -> std::optional<long> {
    long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
      return std::nullopt;
    }
    return value;
  };
  auto pid = number(pid_text);
  if (!pid || *pid != static_cast<long>(::getpid())) {
    return std::nullopt; // meant for another process (e.g. a parent that was activated)
  }
  auto count = number(fds_text);
  if (!count || *count < 1) {
    return std::unexpected(fmt::format("socket activation: LISTEN_FDS is \"{}\", expected a count of at least 1", fds_text));
  }
  if (*count > 1) {
    return std::unexpected(
        fmt::format("socket activation passed {} sockets; the socket unit must have exactly one ListenStream", *count));
  }
  int fd = kFirstPassedFd;
  int type = 0;
  int accepting = 0;
  socklen_t length = sizeof type;
  sockaddr_storage address{};
  socklen_t address_length = sizeof address;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 ||
      (length = sizeof accepting, ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) {
    return std::unexpected(fmt::format("socket activation: fd 3 is not a socket: {}", std::strerror(errno)));
  }
  if (address.ss_family != AF_UNIX || type != SOCK_STREAM || accepting == 0) {
    return std::unexpected("socket activation: fd 3 is not a listening Unix stream socket (ListenStream= with a path)");
  }
  // systemd passes it inheritable; jails and workers must not get it.
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    return std::unexpected(fmt::format("socket activation: fcntl: {}", std::strerror(errno)));
  }
  return util::Fd(fd);
}


} // namespace sandbox::service
