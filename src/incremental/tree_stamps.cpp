#include "incremental/tree_stamps.h"

#include "util/fs.h"
#include "util/hash.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

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
    if (excluded_input(relative)) {
      continue;
    }
    bool link = entry.type == fs::file_type::symlink;
    if (!link && entry.type != fs::file_type::regular) {
      continue;
    }
    auto full = root / entry.relative;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) {
      continue; // removed while listing: absent
    }
    FileStamp stamp;
    stamp.size = static_cast<std::uint64_t>(st.st_size);
    stamp.mtime_ns = ns(st.st_mtim);
    stamp.ctime_ns = ns(st.st_ctim);
    stamp.inode = st.st_ino;
    auto prev = previous.find(relative);
    if (prev != previous.end() && prev->second.same_stat(stamp) &&
        stamp.ctime_ns < previous_at_ns - kRacyWindowNs) {
      stamp.sha256 = prev->second.sha256;
    } else if (link) {
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
    out.emplace(std::move(relative), std::move(stamp));
  }
  return out;
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
