#include "service/listen_socket.h"

#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace sandbox::service {

using util::Fd;

namespace {

std::expected<sockaddr_un, std::string> socket_address(const std::filesystem::path& path)
{
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const auto& text = path.native();
  if (text.empty() || text.size() >= sizeof address.sun_path) {
    return std::unexpected(fmt::format("socket path must be 1 to {} bytes long", sizeof address.sun_path - 1));
  }
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  return address;
}

// A socket file left by a server that is gone is replaced; a live server's
// socket and anything that is not a socket are refused.
std::expected<void, std::string> clear_stale_socket(const std::filesystem::path& path, const sockaddr_un& address)
{
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    return {};
  }
  if (!S_ISSOCK(st.st_mode)) {
    return std::unexpected(fmt::format("{} exists and is not a socket", path.string()));
  }
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
    return std::unexpected(fmt::format("a service is already listening on {}", path.string()));
  }
  ::unlink(path.c_str());
  return {};
}

} // namespace

std::expected<Fd, std::string> listen_on(const std::filesystem::path& path, mode_t mode, SocketFile& file)
{
  auto address = socket_address(path);
  if (!address) {
    return std::unexpected(address.error());
  }
  if (auto cleared = clear_stale_socket(path, *address); !cleared) {
    return std::unexpected(cleared.error());
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return std::unexpected(fmt::format("socket: {}", std::strerror(errno)));
  }
  // The file is created with no access for anyone but the owner, then given
  // the requested mode: no moment exists at which others may connect.
  mode_t old_mask = ::umask(0177);
  int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
  int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) {
    return std::unexpected(fmt::format("bind {}: {}", path.string(), std::strerror(bind_errno)));
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    return std::unexpected(fmt::format("stat {}: {}", path.string(), std::strerror(errno)));
  }
  file.own(path, st.st_dev, st.st_ino);
  if (::chmod(path.c_str(), mode) != 0) {
    return std::unexpected(fmt::format("chmod {}: {}", path.string(), std::strerror(errno)));
  }
  if (::listen(fd.get(), 128) != 0) {
    return std::unexpected(fmt::format("listen: {}", std::strerror(errno)));
  }
  return fd;
}

std::string bound_path(int fd)
{
  sockaddr_un address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      length <= offsetof(sockaddr_un, sun_path) || address.sun_path[0] == '\0') {
    return "";
  }
  return std::string(address.sun_path, ::strnlen(address.sun_path, length - offsetof(sockaddr_un, sun_path)));
}

} // namespace sandbox::service
