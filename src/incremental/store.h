#pragma once
// Where the incremental state lives and how it is trusted.
//
// `.sandbox_cache/` (file_hashes.json, last_compilation.json,
// dependency_graph.json, cache_stats.json) is written into the sandbox, as the
// specification lays it out, when the engine can create it there as a real
// directory; otherwise (read-only sandbox, a planted symlink or file) under
// <state_dir>/caches/<sandbox id>/. Every file carries an HMAC-SHA-256 under
// the engine key over the sandbox's resolved path, the file's name and its
// content; what fails to verify is ignored with a warning. Files are opened
// relative to a directory fd with O_NOFOLLOW|O_NONBLOCK and must be regular,
// writes go through a temporary file and renameat, so a planted link, FIFO
// or directory is never followed, read from or deleted through.
//
// BEAM files never live at a path a cache file names: they are kept in a
// content-addressed store under <state_dir>/objects, named by their SHA-256 and
// checked against it on every read.
//
// Strings in the files are byte strings (file names need not be UTF-8):
// written with util::escape_bytes, so a valid UTF-8 name appears as it is and
// any other one NUL-marked with \xHH escapes; read back exactly.

#include "util/fd.h"

#include <nlohmann/json.hpp>

#include <initializer_list>

#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::incremental {

namespace fs = std::filesystem;

inline constexpr const char* kCacheDirName = ".sandbox_cache";
inline constexpr const char* kFileHashes = "file_hashes.json";
inline constexpr const char* kLastCompilation = "last_compilation.json";
inline constexpr const char* kDependencyGraph = "dependency_graph.json";
inline constexpr const char* kCacheStats = "cache_stats.json";
inline constexpr const char* kPreviousSuffix = ".previous";

// A short stable id of a resolved sandbox path (for engine-side names).
std::string sandbox_id(const fs::path& sandbox);

class CacheDir {
public:
  // Opens the cache directory of `sandbox` (resolved), creating it when
  // `create`. Prefers <sandbox>/.sandbox_cache; falls back to the engine's
  // <state_dir>/caches/<id>. `warnings` receives why the sandbox copy was not used.
  static std::expected<CacheDir, std::string> open(const fs::path& sandbox, const fs::path& state_dir,
                                                   bool create, std::vector<std::string>& warnings);

  // The verified JSON of `name`, its strings unescaped, or why it is not
  // usable (missing, not a regular file, too large, not JSON, HMAC mismatch,
  // an escaped string that escape_bytes did not write).
  [[nodiscard]] std::expected<nlohmann::json, std::string> read(const std::string& name,
                                                                const std::string& key) const;
  [[nodiscard]] std::expected<void, std::string> write(const std::string& name, nlohmann::json data,
                                                       const std::string& key) const;
  // The copy of `name` kept by keep_previous (`<name>.previous`), verified as
  // `name`: what a reader falls back on when a newer `name` belongs to a
  // compile whose write did not finish.
  [[nodiscard]] std::expected<nlohmann::json, std::string> read_previous(const std::string& name,
                                                                         const std::string& key) const;
  // Renames `name` to `<name>.previous` (replacing an older one).
  [[nodiscard]] std::expected<void, std::string> keep_previous(const std::string& name) const;
  // What `names` are on disk now (device, inode, size, modification and
  // change times of each, "-" for a missing one): equal identities mean files
  // not written since, so what was read from them still holds.
  [[nodiscard]] std::string identity(std::initializer_list<std::string> names) const;
  // Unlinks the known cache file names and their .previous copies (never a
  // path read from a cache file).
  void clear() const;

  [[nodiscard]] const fs::path& path() const { return m_path; }
  [[nodiscard]] bool in_sandbox() const { return m_in_sandbox; }

private:
  // Reads `file`, authenticated as the cache file `name`.
  [[nodiscard]] std::expected<nlohmann::json, std::string> read_signed(const std::string& file,
                                                                       const std::string& name,
                                                                       const std::string& key) const;
  CacheDir(util::Fd fd, fs::path path, fs::path sandbox, bool in_sandbox)
    : m_fd(std::move(fd)), m_path(std::move(path)), m_sandbox(std::move(sandbox)), m_in_sandbox(in_sandbox)
  {
  }
  util::Fd m_fd;
  fs::path m_path;
  fs::path m_sandbox;
  bool m_in_sandbox = false;
};

// Content-addressed BEAM store.
class ObjectStore {
public:
  explicit ObjectStore(fs::path root) : m_root(std::move(root)) {}
  // Stores `bytes`; returns their SHA-256 (hex).
  [[nodiscard]] std::expected<std::string, std::string> put(std::string_view bytes) const;
  // The bytes stored under `sha256`, checked against it.
  [[nodiscard]] std::expected<std::string, std::string> get(const std::string& sha256) const;
  [[nodiscard]] bool has(const std::string& sha256) const;
  // get() would succeed without reading the disk, or the object is on disk.
  [[nodiscard]] bool readable(const std::string& sha256) const;

private:
  [[nodiscard]] fs::path object_path(const std::string& sha256) const;
  fs::path m_root;
};

// An exclusive lock per sandbox, in the engine's state directory (never in
// the sandbox): compiles of one sandbox run one at a time.
class SandboxLock {
public:
  static std::expected<SandboxLock, std::string> acquire(const fs::path& state_dir, const std::string& id);

private:
  explicit SandboxLock(util::Fd fd) : m_fd(std::move(fd)) {}
  util::Fd m_fd; // the flock is released when the fd closes
};

} // namespace sandbox::incremental
