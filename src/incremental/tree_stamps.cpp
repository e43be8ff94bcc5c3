#include "incremental/tree_stamps.h"

#include "util/fs.h"
#include "util/hash.h"
#include "incremental/tree_watch.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <optional>

namespace sandbox::incremental {

namespace {

constexpr std::uint64_t kMaxHashedBytes = 256ull << 20;
constexpr std::int64_t kRacyWindowNs = 2'000'000'000;

std::int64_t ns(const struct timespec& ts)
{
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

} // namespace

bool excluded_input(const std::string& relative)
{
  auto first = relative.substr(0, relative.find('/'));
  return first == ".sandbox_cache" || first == "_build" || first == ".git" || first == ".elixir_ls" ||
         first == ".hex" || first == ".mix";
}

std::int64_t now_ns()
{
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

namespace {

bool stamped_type(fs::file_type type)
{
  return type == fs::file_type::regular || type == fs::file_type::symlink;
}

// The stamp of one file or link; its hash is taken from `prev` when the stat
// fields match and its ctime is older than `previous_at_ns` - 2 s. nullopt:
// gone, or neither a file nor a link.
std::optional<FileStamp> stamp_file(const fs::path& full, const FileStamp* prev, std::int64_t previous_at_ns)
{
  struct stat st {};
  if (::lstat(full.c_str(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
    return std::nullopt; // removed while listing: absent
  }
  FileStamp stamp;
  stamp.size = static_cast<std::uint64_t>(st.st_size);
  stamp.mtime_ns = ns(st.st_mtim);
  stamp.ctime_ns = ns(st.st_ctim);
  stamp.inode = st.st_ino;
  stamp.shared = st.st_nlink > 1;
  if (prev != nullptr && prev->same_stat(stamp) && stamp.ctime_ns < previous_at_ns - kRacyWindowNs) {
    stamp.sha256 = prev->sha256;
  } else if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto target = fs::read_symlink(full, ec);
    stamp.sha256 = util::sha256_hex("symlink:" + (ec ? std::string("?") : target.string()));
  } else if (stamp.size > kMaxHashedBytes) {
    // Too large to hash: never reused, so always seen as changed.
    stamp.sha256 = "unhashed";
  } else {
    auto content = util::read_file(full, kMaxHashedBytes);
    stamp.sha256 = content ? util::sha256_hex(*content) : "unreadable";
  }
  return stamp;
}

} // namespace

std::expected<TreeStamps, std::string> stamp_tree(const fs::path& root, const TreeStamps& previous,
                                                  std::int64_t previous_at_ns)
{
  auto entries = util::list_tree(root);
  if (!entries) {
    return std::unexpected(entries.error());
  }
  TreeStamps out;
  for (const auto& entry : *entries) {
    auto relative = entry.relative.string();
    if (excluded_input(relative) || !stamped_type(entry.type)) {
      continue;
    }
    auto prev = previous.find(relative);
    auto stamp = stamp_file(root / entry.relative, prev == previous.end() ? nullptr : &prev->second, previous_at_ns);
    if (stamp) {
      out.emplace(std::move(relative), std::move(*stamp));
    }
  }
  return out;
}

TreeStamps restamp(const fs::path& root, TreeStamps base, const std::set<std::string>& dirty)
{
  for (const auto& path : dirty) {
    std::erase_if(base, [&](const auto& entry) { return path_under(entry.first, path); });
    if (path.empty() || excluded_input(path)) {
      continue;
    }
    auto full = root / path;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) {
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (auto stamp = stamp_file(full, nullptr, 0)) base[path] = std::move(*stamp);
      continue;
    }
    auto entries = util::list_tree(full);
    for (const auto& entry : entries ? *entries : std::vector<util::TreeEntry>{}) {
      auto relative = path + "/" + entry.relative.string();
      if (excluded_input(relative) || !stamped_type(entry.type)) continue;
      if (auto stamp = stamp_file(full / entry.relative, nullptr, 0)) base[relative] = std::move(*stamp);
    }
  }
  return base;
}

namespace {

WatchedViews<TreeStamps>& baselines()
{
  static WatchedViews<TreeStamps> views;
  return views;
}

} // namespace

std::expected<TreeStamps, std::string> stamp_tree_watched(const fs::path& root, const TreeStamps& previous,
                                                          std::int64_t previous_at_ns, bool* watched)
{
  auto changes = TreeWatcher::instance().changes(root, WatchConsumer::stamps);
  auto base = baselines().take(root, changes);
  std::expected<TreeStamps, std::string> now;
  if (base) {
    // A file with another name outside the tree can change without an event here.
    for (const auto& [path, stamp] : *base) {
      if (stamp.shared) changes->insert(path);
    }
    now = restamp(root, std::move(*base), *changes);
  } else {
    now = stamp_tree(root, previous, previous_at_ns);
  }
  if (watched != nullptr) *watched = base.has_value();
  if (now) {
    baselines().keep(root, *now);
  }
  return now;
}

TreeDiff diff_trees(const TreeStamps& before, const TreeStamps& after)
{
  TreeDiff diff;
  for (const auto& [path, stamp] : after) {
    auto found = before.find(path);
    if (found == before.end()) {
      diff.added.insert(path);
    } else if (found->second.sha256 != stamp.sha256 || stamp.sha256 == "unhashed" ||
               stamp.sha256 == "unreadable") {
      diff.changed.insert(path);
    }
  }
  for (const auto& [path, stamp] : before) {
    if (!after.contains(path)) {
      diff.deleted.insert(path);
    }
  }
  return diff;
}

nlohmann::json to_json(const TreeStamps& stamps)
{
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [path, s] : stamps) {
    out[path] = {{"sha256", s.sha256}, {"size", s.size}, {"mtime_ns", s.mtime_ns},
                 {"ctime_ns", s.ctime_ns}, {"inode", s.inode}};
  }
  return out;
}

TreeStamps stamps_from_json(const nlohmann::json& json)
{
  TreeStamps out;
  for (const auto& [path, s] : json.items()) {
    FileStamp stamp;
    stamp.sha256 = s.at("sha256").get<std::string>();
    stamp.size = s.at("size").get<std::uint64_t>();
    stamp.mtime_ns = s.at("mtime_ns").get<std::int64_t>();
    stamp.ctime_ns = s.at("ctime_ns").get<std::int64_t>();
    stamp.inode = s.at("inode").get<std::uint64_t>();
    out.emplace(path, std::move(stamp));
  }
  return out;
}

} // namespace sandbox::incremental
