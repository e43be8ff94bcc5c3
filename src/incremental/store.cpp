#include "incremental/store.h"

#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace sandbox::incremental {

namespace {

constexpr std::size_t kMaxCacheFileBytes = 64ull << 20;
constexpr const char* kFormat = "sandbox-cache-v1";

std::string signed_payload(const fs::path& sandbox, const std::string& name, const std::string& body)
{
  return fmt::format("{}\n{}\n{}\n{}", kFormat, sandbox.string(), name, body);
}

// A name the cache itself writes: no slash, no dot-dot, no NUL.
bool plain_name(const std::string& name)
{
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != ".." &&
         name.find('\0') == std::string::npos;
}

std::expected<std::string, std::string> read_at(int dirfd, const std::string& name, std::size_t max)
{
  util::Fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    return std::unexpected(errno == ENOENT ? std::string("missing") : util::errno_message("cannot open"));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::unexpected("not a regular file");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max) {
    return std::unexpected("too large");
  }
  std::string data;
  char buffer[65536];
  while (true) {
    auto n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(util::errno_message("cannot read"));
    }
    if (n == 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > max) {
      return std::unexpected("too large");
    }
  }
  return data;
}

std::expected<void, std::string> write_at(int dirfd, const std::string& name, std::string_view data)
{
  auto tmp = fmt::format(".{}.{}.tmp", name, util::sha256_hex(util::random_bytes(16)).substr(0, 16));
  util::Fd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) {
    return std::unexpected(util::errno_message("cannot create " + tmp));
  }
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto message = util::errno_message("cannot write " + tmp);
      ::unlinkat(dirfd, tmp.c_str(), 0);
      return std::unexpected(message);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    auto message = util::errno_message("cannot replace " + name);
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return std::unexpected(message);
  }
  return {};
}

// Opens (and creates) `name` under dirfd as a real directory, never a link.
util::Fd open_dir_at(int dirfd, const char* name, bool create, std::string& why)
{
  if (create && ::mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST) {
    why = util::errno_message(fmt::format("cannot create {}", name));
    return {};
  }
  util::Fd fd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    why = errno == ENOENT ? "missing" : util::errno_message(fmt::format("cannot open {}", name));
  }
  return fd;
}

std::expected<void, std::string> make_private_dirs(const fs::path& dir)
{
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return std::unexpected("cannot create " + dir.string() + ": " + ec.message());
  }
  ::chmod(dir.c_str(), 0700);
  return {};
}

} // namespace

std::string sandbox_id(const fs::path& sandbox)
{
  return util::sha256_hex(sandbox.string()).substr(0, 32);
}

std::expected<CacheDir, std::string> CacheDir::open(const fs::path& sandbox, const fs::path& state_dir,
                                                    bool create, std::vector<std::string>& warnings)
{
  util::Fd root(::open(sandbox.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root) {
    std::string why;
    struct stat st {};
    bool exists = ::fstatat(root.get(), kCacheDirName, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
      warnings.push_back(fmt::format("{} in the sandbox is not a directory: ignored", kCacheDirName));
    } else if (exists || (create && ::faccessat(root.get(), ".", W_OK, AT_EACCESS) == 0)) {
      auto fd = open_dir_at(root.get(), kCacheDirName, create, why);
      if (fd && (!create || ::faccessat(fd.get(), ".", W_OK, AT_EACCESS) == 0)) {
        return CacheDir(std::move(fd), sandbox / kCacheDirName, sandbox, true);
      }
      if (!fd && exists) {
        warnings.push_back(fmt::format("{} in the sandbox: {}", kCacheDirName, why));
      }
    }
  }
  // The engine's own copy, for sandboxes it cannot (or should not) write.
  auto dir = state_dir / "caches" / sandbox_id(sandbox);
  if (create) {
    if (auto made = make_private_dirs(dir); !made) {
      return std::unexpected(made.error());
    }
  }
  util::Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return std::unexpected(util::errno_message("cannot open " + dir.string()));
  }
  return CacheDir(std::move(fd), dir, sandbox, false);
}

std::expected<nlohmann::json, std::string> CacheDir::read(const std::string& name,
                                                          const std::string& key) const
{
  return read_signed(name, name, key);
}

std::expected<nlohmann::json, std::string> CacheDir::read_previous(const std::string& name,
                                                                   const std::string& key) const
{
  return read_signed(name + kPreviousSuffix, name, key);
}

std::string CacheDir::identity(std::initializer_list<std::string> names) const
{
  std::string out = m_path.string();
  for (const auto& name : names) {
    struct stat st {};
    if (::fstatat(m_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      out += "|-";
      continue;
    }
    out += fmt::format("|{}:{}:{}:{}.{}:{}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
                       st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  }
  return out;
}

std::expected<void, std::string> CacheDir::keep_previous(const std::string& name) const
{
  if (!plain_name(name)) {
    return std::unexpected("bad name");
  }
  auto previous = name + kPreviousSuffix;
  if (::renameat(m_fd.get(), name.c_str(), m_fd.get(), previous.c_str()) != 0) {
    return std::unexpected(util::errno_message("cannot rename " + name));
  }
  return {};
}

std::expected<nlohmann::json, std::string> CacheDir::read_signed(const std::string& file,
                                                                 const std::string& name,
                                                                 const std::string& key) const
{
  if (!plain_name(file) || !plain_name(name)) {
    return std::unexpected("bad name");
  }
  auto text = read_at(m_fd.get(), file, kMaxCacheFileBytes);
  if (!text) {
    return std::unexpected(text.error());
  }
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("hmac") || !doc["hmac"].is_string() ||
      !doc.contains("format") || doc["format"] != kFormat) {
    return std::unexpected("not a cache file of this engine");
  }
  auto mac = doc["hmac"].get<std::string>();
  doc.erase("hmac");
  std::string body;
  try {
    body = doc.dump();
  } catch (const nlohmann::json::exception&) {
    return std::unexpected("not a cache file of this engine");
  }
  auto expected = util::hmac_sha256_hex(key, signed_payload(m_sandbox, name, body));
  if (!util::constant_time_equal(mac, expected)) {
    return std::unexpected("authentication failed (not written by this engine for this sandbox)");
  }
  auto decoded = util::unescape_strings(doc);
  if (!decoded) {
    return std::unexpected(decoded.error());
  }
  return std::move(*decoded);
}

std::expected<void, std::string> CacheDir::write(const std::string& name, nlohmann::json data,
                                                 const std::string& key) const
{
  if (!plain_name(name)) {
    return std::unexpected("bad name");
  }
  std::string text;
  try {
    // File names are bytes; the escape keeps those that are not UTF-8.
    data = util::escape_strings(data);
    data["format"] = kFormat;
    data.erase("hmac");
    auto body = data.dump();
    data["hmac"] = util::hmac_sha256_hex(key, signed_payload(m_sandbox, name, body));
    text = data.dump(1);
  } catch (const nlohmann::json::exception& e) {
    return std::unexpected(std::string("cannot serialise: ") + e.what());
  }
  return write_at(m_fd.get(), name, text);
}

void CacheDir::clear() const
{
  for (const char* name : {kFileHashes, kLastCompilation, kDependencyGraph, kCacheStats}) {
    ::unlinkat(m_fd.get(), name, 0);
    ::unlinkat(m_fd.get(), (std::string(name) + kPreviousSuffix).c_str(), 0);
  }
  if (m_in_sandbox) {
    util::Fd root(::open(m_sandbox.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root) {
      ::unlinkat(root.get(), kCacheDirName, AT_REMOVEDIR); // only when empty
    }
  }
}

fs::path ObjectStore::object_path(const std::string& sha256) const
{
  return m_root / sha256.substr(0, 2) / (sha256.substr(2) + ".beam");
}

bool ObjectStore::has(const std::string& sha256) const
{
  std::error_code ec;
  return sha256.size() == 64 && fs::is_regular_file(fs::symlink_status(object_path(sha256), ec));
}

std::expected<std::string, std::string> ObjectStore::put(std::string_view bytes) const
{
  auto sha = util::sha256_hex(bytes);
  if (has(sha)) {
    return sha;
  }
  auto path = object_path(sha);
  if (auto made = make_private_dirs(path.parent_path()); !made) {
    return std::unexpected(made.error());
  }
  if (auto written = util::write_file_atomic(path, bytes, 0600); !written) {
    return std::unexpected(written.error());
  }
  return sha;
}

namespace {

// Objects read and checked recently, by name: an object's bytes are its name,
// so a long-running engine reads and hashes each one once, not on every cache
// hit. Bounded in bytes, least recently used first out.
class RecentObjects {
public:
  bool contains(const std::string& sha256)
  {
    std::lock_guard lock(m_mutex);
    return m_entries.contains(sha256);
  }

  std::optional<std::string> find(const std::string& sha256)
  {
    std::lock_guard lock(m_mutex);
    auto it = m_entries.find(sha256);
    if (it == m_entries.end()) return std::nullopt;
    m_order.splice(m_order.end(), m_order, it->second.position);
    return it->second.bytes;
  }

  void add(const std::string& sha256, const std::string& bytes)
  {
    if (bytes.size() > kMaxBytes / 8) return;
    std::lock_guard lock(m_mutex);
    if (m_entries.contains(sha256)) return;
    m_order.push_back(sha256);
    m_entries.emplace(sha256, Entry{bytes, std::prev(m_order.end())});
    m_bytes += bytes.size();
    while (m_bytes > kMaxBytes && !m_order.empty()) {
      auto oldest = m_entries.find(m_order.front());
      m_bytes -= oldest->second.bytes.size();
      m_entries.erase(oldest);
      m_order.pop_front();
    }
  }

private:
  static constexpr std::size_t kMaxBytes = 64ull << 20;
  struct Entry {
    std::string bytes;
    std::list<std::string>::iterator position;
  };
  std::mutex m_mutex;
  std::list<std::string> m_order; // oldest first
  std::unordered_map<std::string, Entry> m_entries;
  std::size_t m_bytes = 0;
};

RecentObjects& recent_objects()
{
  static RecentObjects objects;
  return objects;
}

} // namespace

bool ObjectStore::readable(const std::string& sha256) const
{
  return recent_objects().contains(sha256) || has(sha256);
}

std::expected<std::string, std::string> ObjectStore::get(const std::string& sha256) const
{
  if (sha256.size() != 64 || sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return std::unexpected("not an object name");
  }
  if (auto known = recent_objects().find(sha256)) {
    return std::move(*known);
  }
  auto bytes = util::read_file(object_path(sha256), 256ull << 20);
  if (!bytes) {
    return std::unexpected(bytes.error());
  }
  if (util::sha256_hex(*bytes) != sha256) {
    return std::unexpected("object " + sha256 + " is corrupt");
  }
  recent_objects().add(sha256, *bytes);
  return bytes;
}

std::expected<SandboxLock, std::string> SandboxLock::acquire(const fs::path& state_dir, const std::string& id)
{
  auto dir = state_dir / "locks";
  if (auto made = make_private_dirs(dir); !made) {
    return std::unexpected(made.error());
  }
  auto path = dir / (id + ".lock");
  util::Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    return std::unexpected(util::errno_message("cannot open " + path.string()));
  }
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return std::unexpected(util::errno_message("cannot lock " + path.string()));
    }
  }
  return SandboxLock(std::move(fd));
}

} // namespace sandbox::incremental
