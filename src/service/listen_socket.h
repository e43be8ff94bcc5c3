#pragma once
// The Unix socket `sandbox serve` listens on when systemd does not pass one:
// created so that no moment exists at which others may connect, a stale one
// replaced, a live one refused, and its file removed at stop if it is still
// the one this server created.

#include "util/fd.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <expected>
#include <filesystem>
#include <string>

namespace sandbox::service {

// The listening socket's file; removed when the server ends, if it is still
// the one this server created.
class SocketFile {
public:
  SocketFile() = default;
  SocketFile(const SocketFile&) = delete;
  SocketFile& operator=(const SocketFile&) = delete;
  ~SocketFile() { remove(); }

  void own(std::filesystem::path path, dev_t dev, ino_t ino)
  {
    m_path = std::move(path);
    m_dev = dev;
    m_ino = ino;
  }
  void remove()
  {
    struct stat st{};
    if (!m_path.empty() && ::lstat(m_path.c_str(), &st) == 0 && st.st_dev == m_dev && st.st_ino == m_ino) {
      ::unlink(m_path.c_str());
    }
    m_path.clear();
  }

private:
  std::filesystem::path m_path;
  dev_t m_dev = 0;
  ino_t m_ino = 0;
};

// Binds and listens on `path` (given `mode` once bound); `file` then owns it.
std::expected<util::Fd, std::string> listen_on(const std::filesystem::path& path, mode_t mode, SocketFile& file);

// The path a Unix socket is bound to ("" when it has none).
std::string bound_path(int fd);

} // namespace sandbox::service
