#pragma once
// Change detection over a whole sandbox tree: every file outside the build
// directories is an input (hidden inputs included: a README a macro reads
// counts as much as a .ex file). Size, mtime, ctime and inode are the fast
// path; SHA-256 of the content is the truth. A file whose ctime is not clearly
// older than the previous recording is rehashed (an edit within the same
// timestamp tick is never missed), and ctime cannot be set back by the
// sandbox's owner the way mtime can.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <set>
#include <string>

namespace sandbox::incremental {

namespace fs = std::filesystem;

struct FileStamp {
  std::string sha256;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t inode = 0;
  bool shared = false; // more than one name: not stored, not compared

  [[nodiscard]] bool same_stat(const FileStamp& other) const
  {
    return size == other.size && mtime_ns == other.mtime_ns && ctime_ns == other.ctime_ns &&
           inode == other.inode;
  }
};

using TreeStamps = std::map<std::string, FileStamp>; // relative path -> stamp

// Paths that are never inputs: the cache itself and build/tool directories.
bool excluded_input(const std::string& relative);

std::int64_t now_ns();

// Stamps every input under `root`. Hashes are reused from `previous` when the
// stat fields match and the file's ctime is older than `previous_at_ns` - 2 s.
std::expected<TreeStamps, std::string> stamp_tree(const fs::path& root, const TreeStamps& previous = {},
                                                  std::int64_t previous_at_ns = 0);

// The stamps of `root` now, from `base` (its stamps at some earlier time) and
// the paths, files or directories, that may differ since: each is stamped and
// hashed again, a directory with everything under it.
TreeStamps restamp(const fs::path& root, TreeStamps base, const std::set<std::string>& dirty);

// stamp_tree through the engine's watch of the tree (tree_watch.h): the last
// stamps of the tree patched with what changed since, when the watch can
// vouch for it, else stamp_tree itself. `watched` says which.
std::expected<TreeStamps, std::string> stamp_tree_watched(const fs::path& root, const TreeStamps& previous,
                                                          std::int64_t previous_at_ns, bool* watched = nullptr);

struct TreeDiff {
  std::set<std::string> changed;
  std::set<std::string> added;
  std::set<std::string> deleted;
  [[nodiscard]] bool empty() const { return changed.empty() && added.empty() && deleted.empty(); }
};

TreeDiff diff_trees(const TreeStamps& before, const TreeStamps& after);

nlohmann::json to_json(const TreeStamps& stamps);
TreeStamps stamps_from_json(const nlohmann::json& json); // throws nlohmann::json::exception

} // namespace sandbox::incremental
