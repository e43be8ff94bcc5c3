#pragma once
// File-system helpers that never follow a link they were not asked to follow.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::util {

namespace fs = std::filesystem;

// The engine's state directory: $SANDBOX_STATE_DIR, else
// $XDG_STATE_HOME/sandbox, else ~/.local/state/sandbox, else /var/lib/sandbox.
fs::path engine_state_dir();

// Reads a whole regular file, refusing anything larger than max_bytes. A
// symlink as the last component is refused (O_NOFOLLOW), never followed.
std::expected<std::string, std::string> read_file(const fs::path& path,
                                                  std::uint64_t max_bytes = UINT64_MAX);

// Writes via a temporary file in the same directory and rename(2), so readers
// see either the old or the new content, never a torn write; the data is
// flushed to disk (fsync) before the rename.
std::expected<void, std::string> write_file_atomic(const fs::path& path, std::string_view data,
                                                   unsigned mode = 0644);

// The same replacement without the fsync: for scratch copies and a job's
// temporary outputs, which need no durability across a machine crash.
std::expected<void, std::string> write_file_replace(const fs::path& path, std::string_view data,
                                                    unsigned mode = 0644);

// Creates `path`, which must not exist, with `data` (no rename, no fsync): for
// a directory no one else writes to, such as a fresh private temp dir.
std::expected<void, std::string> write_new_file(const fs::path& path, std::string_view data, unsigned mode = 0644);

// True when `path` (already resolved) is `root` or lies below it, compared by
// path components, never by string prefix.
bool is_within(const fs::path& root, const fs::path& path);

struct TreeEntry {
  fs::path relative;
  fs::file_type type = fs::file_type::none;
  std::uint64_t size = 0;
  unsigned mode = 0;
  std::uint64_t links = 1; // st_nlink
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t inode = 0;
};

// Lists a tree with lstat semantics: symlinks are reported, never followed.
// Entries are sorted by relative path.
std::expected<std::vector<TreeEntry>, std::string> list_tree(const fs::path& root);

// Removes a tree without following symlinks out of it. Errors are reported,
// not thrown.
std::expected<void, std::string> remove_tree(const fs::path& root);

// Removes everything in `dir` (as remove_tree), keeping `dir` itself: a bind
// mount's directory is emptied, never replaced. An error when something stays.
std::expected<void, std::string> empty_directory(const fs::path& dir);

// A directory created 0700 under `parent` with a unique name; removed when the
// owner is destroyed unless keep() was called.
class TempDir {
public:
  static std::expected<TempDir, std::string> create(const fs::path& parent,
                                                    std::string_view prefix);
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir();

  [[nodiscard]] const fs::path& path() const noexcept { return m_path; }
  // Hands ownership to the caller: the directory survives this object.
  fs::path keep() noexcept;

private:
  explicit TempDir(fs::path path) : m_path(std::move(path)) {}
  fs::path m_path;
};

// The directory for temporary files: $TMPDIR if it is an existing directory, else /tmp.
fs::path default_temp_root();

std::string errno_message(std::string_view what);

// The numeric entries of /proc (process ids) at this moment. Processes come
// and go while /proc is read; this never throws and returns what it saw.
std::vector<int> list_pids();

// The contents of /proc/PID/NAME, or an empty string when the process is gone
// or the file cannot be read. A process may exit between list_pids() and this
// read (reads then fail with ESRCH); callers treat "gone" as "not there".
std::string read_proc_file(int pid, std::string_view name);

} // namespace sandbox::util
