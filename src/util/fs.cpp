#include "util/fs.h"

#include "util/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace sandbox::util {

fs::path engine_state_dir()
{
  if (const char* dir = std::getenv("SANDBOX_STATE_DIR"); dir != nullptr && *dir == '/') {
    return dir;
  }
  if (const char* dir = std::getenv("XDG_STATE_HOME"); dir != nullptr && *dir == '/') {
    return fs::path(dir) / "sandbox";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return fs::path(home) / ".local" / "state" / "sandbox";
  }
  return fs::path("/var/lib/sandbox");
}

std::string errno_message(std::string_view what)
{
  return std::string(what) + ": " + std::strerror(errno);
}

std::expected<std::string, std::string> read_file(const fs::path& path, std::uint64_t max_bytes)
{
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    return std::unexpected(errno_message("cannot open " + path.string()));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return std::unexpected(errno_message("cannot stat " + path.string()));
  }
  if (!S_ISREG(st.st_mode)) {
    return std::unexpected(path.string() + " is not a regular file");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return std::unexpected(path.string() + " is larger than " + std::to_string(max_bytes) +
                           " bytes");
  }
  std::string data;
  data.reserve(static_cast<std::size_t>(st.st_size));
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::unexpected(errno_message("cannot read " + path.string()));
    }
    if (n == 0) {
      break;
    }
    if (data.size() + static_cast<std::size_t>(n) > max_bytes) {
      return std::unexpected(path.string() + " grew past " + std::to_string(max_bytes) +
                             " bytes");
    }
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

namespace {

// Writes all of `data` to `fd` and closes it (after fsync when `sync`).
std::expected<void, std::string> write_all_and_close(Fd fd, const fs::path& path, std::string_view data, bool sync)
{
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::unexpected(errno_message("cannot write " + path.string()));
    }
    done += static_cast<std::size_t>(n);
  }
  if ((sync && ::fsync(fd.get()) != 0) || ::close(fd.release()) != 0) {
    return std::unexpected(errno_message("cannot flush " + path.string()));
  }
  return {};
}

std::expected<void, std::string> write_via_rename(const fs::path& path, std::string_view data,
                                                  unsigned mode, bool sync)
{
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) {
    return std::unexpected(errno_message("cannot create " + tmp.string()));
  }
  if (auto written = write_all_and_close(std::move(fd), tmp, data, sync); !written) {
    ::unlink(tmp.c_str());
    return written;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto message = errno_message("cannot rename onto " + path.string());
    ::unlink(tmp.c_str());
    return std::unexpected(message);
  }
  return {};
}

} // namespace

std::expected<void, std::string> write_file_atomic(const fs::path& path, std::string_view data,
                                                   unsigned mode)
{
  return write_via_rename(path, data, mode, true);
}

std::expected<void, std::string> write_file_replace(const fs::path& path, std::string_view data,
                                                    unsigned mode)
{
  return write_via_rename(path, data, mode, false);
}

std::expected<void, std::string> write_new_file(const fs::path& path, std::string_view data, unsigned mode)
{
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) {
    return std::unexpected(errno_message("cannot create " + path.string()));
  }
  if (auto written = write_all_and_close(std::move(fd), path, data, false); !written) {
    ::unlink(path.c_str());
    return written;
  }
  return {};
}

bool is_within(const fs::path& root, const fs::path& path)
{
  auto r = root.lexically_normal();
  auto p = path.lexically_normal();
  auto rit = r.begin();
  auto pit = p.begin();
  for (; rit != r.end(); ++rit, ++pit) {
    if (rit->empty() && std::next(rit) == r.end()) {
      break; // trailing separator of root
    }
    if (pit == p.end() || *rit != *pit) {
      return false;
    }
  }
  return true;
}

std::expected<std::vector<TreeEntry>, std::string> list_tree(const fs::path& root)
{
  std::vector<TreeEntry> entries;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) {
    return std::unexpected("cannot list " + root.string() + ": " + ec.message());
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      return std::unexpected("cannot list " + root.string() + ": " + ec.message());
    }
    const auto& entry = *it;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0) {
      return std::unexpected(errno_message("cannot stat " + entry.path().string()));
    }
    TreeEntry item;
    item.relative = entry.path().lexically_relative(root);
    item.size = static_cast<std::uint64_t>(st.st_size);
    item.mode = st.st_mode & 07777;
    item.links = static_cast<std::uint64_t>(st.st_nlink);
    item.mtime_ns = std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    item.ctime_ns = std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
    item.inode = static_cast<std::uint64_t>(st.st_ino);
    if (S_ISREG(st.st_mode)) {
      item.type = fs::file_type::regular;
    } else if (S_ISDIR(st.st_mode)) {
      item.type = fs::file_type::directory;
    } else if (S_ISLNK(st.st_mode)) {
      item.type = fs::file_type::symlink;
    } else {
      item.type = fs::file_type::unknown;
    }
    entries.push_back(std::move(item));
  }
  if (ec) {
    return std::unexpected("cannot list " + root.string() + ": " + ec.message());
  }
  std::sort(entries.begin(), entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.relative < b.relative; });
  return entries;
}

std::expected<void, std::string> remove_tree(const fs::path& root)
{
  std::error_code ec;
  // remove_all does not follow symlinks: a link is removed, not its target.
  fs::remove_all(root, ec);
  if (ec) {
    // A read-only directory inside the tree (a job may chmod one) blocks
    // removal of its entries: make directories writable and retry once.
    std::error_code walk_ec;
    for (auto it = fs::recursive_directory_iterator(root, walk_ec);
         !walk_ec && it != fs::recursive_directory_iterator(); it.increment(walk_ec)) {
      if (it->is_directory(walk_ec) && !it->is_symlink(walk_ec)) {
        ::chmod(it->path().c_str(), 0700);
      }
    }
    ::chmod(root.c_str(), 0700);
    ec.clear();
    fs::remove_all(root, ec);
    if (ec) {
      return std::unexpected("cannot remove " + root.string() + ": " + ec.message());
    }
  }
  return {};
}

std::expected<void, std::string> empty_directory(const fs::path& dir)
{
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (auto removed = remove_tree(entry.path()); !removed) {
      return removed;
    }
  }
  if (ec || !fs::is_empty(dir, ec) || ec) {
    return std::unexpected("cannot empty " + dir.string() + (ec ? ": " + ec.message() : std::string()));
  }
  return {};
}

std::expected<TempDir, std::string> TempDir::create(const fs::path& parent,
                                                    std::string_view prefix)
{
  std::string pattern = (parent / (std::string(prefix) + "XXXXXX")).string();
  // mkdtemp creates the directory with mode 0700.
  if (::mkdtemp(pattern.data()) == nullptr) {
    return std::unexpected(errno_message("cannot create a temporary directory in " +
                                         parent.string()));
  }
  return TempDir(fs::path(pattern));
}

TempDir::TempDir(TempDir&& other) noexcept : m_path(std::exchange(other.m_path, {})) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept
{
  if (this != &other) {
    if (!m_path.empty()) {
      (void)remove_tree(m_path);
    }
    m_path = std::exchange(other.m_path, {});
  }
  return *this;
}

TempDir::~TempDir()
{
  if (!m_path.empty()) {
    (void)remove_tree(m_path);
  }
}

fs::path TempDir::keep() noexcept
{
  return std::exchange(m_path, {});
}

std::vector<int> list_pids()
{
  std::vector<int> pids;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) {
    return pids;
  }
  while (const dirent* entry = ::readdir(dir)) {
    int pid = 0;
    const char* name = entry->d_name;
    const char* p = name;
    for (; *p >= '0' && *p <= '9'; ++p) {
      pid = pid * 10 + (*p - '0');
    }
    if (p != name && *p == '\0') {
      pids.push_back(pid);
    }
  }
  ::closedir(dir);
  return pids;
}

std::string read_proc_file(int pid, std::string_view name)
{
  auto text = read_file(fs::path("/proc") / std::to_string(pid) / name, 1 << 20);
  return text ? std::move(*text) : std::string();
}

fs::path default_temp_root()
{
  if (const char* env = std::getenv("TMPDIR"); env != nullptr && *env != '\0') {
    std::error_code ec;
    if (fs::is_directory(env, ec)) {
      return fs::path(env);
    }
  }
  return fs::path("/tmp");
}

} // namespace sandbox::util
