#pragma once
// A client of `sandbox serve` for the benchmarks: one request per connection,
// as the Elixir client does.

#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

namespace bench {

// The answer, or a discarded value when the service could not be reached.
inline nlohmann::json call(const std::filesystem::path& socket, const nlohmann::json& request)
{
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
  nlohmann::json response = nlohmann::json::value_t::discarded;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    std::string line = request.dump() + "\n", buffer;
    if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
      char chunk[65536];
      ssize_t n;
      while (buffer.find('\n') == std::string::npos && (n = ::read(fd, chunk, sizeof chunk)) > 0) {
        buffer.append(chunk, static_cast<std::size_t>(n));
      }
      response = nlohmann::json::parse(buffer.substr(0, buffer.find('\n')), nullptr, false);
    }
  }
  ::close(fd);
  return response;
}

} // namespace bench
