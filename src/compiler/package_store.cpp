// The package store's files: placing packages into a job's work directory
// (after the job, or while it waits), and the store's statistics, bound and
// pruning (docs/dependencies.md).

#include "compiler/packages.h"

#include "compiler/packages_internal.h"
#include "compiler/source_snapshot.h"
#include "util/fd.h"
#include "util/fs.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>

namespace sandbox::compiler {

namespace {

using package_files::is_dir;
using package_files::make_dirs;

// Entries used this recently are never removed by the bound: a compile may be
// copying them.
constexpr auto kInUseWindow = std::chrono::minutes(30);

} // namespace

std::expected<void, std::string> place_packages(const std::vector<PreparedPackage>& packages,
                                                const fs::path& work)
{
  // Whatever an earlier run in this work directory left there goes first.
  for (const auto& dir : {work / "deps", work / "build"}) {
    if (auto removed = util::remove_tree(dir); !removed) {
      return std::unexpected(removed.error());
    }
    if (auto made = make_dirs(dir / (dir.filename() == "build" ? "lib" : "")); !made) {
      return std::unexpected(made.error());
    }
  }
  for (const auto& package : packages) {
    if (auto copied = snapshot_tree(package.sources, work / "deps" / package.app); !copied) {
      return std::unexpected(copied.error());
    }
    if (!package.build.empty()) {
      if (!is_dir(package.build)) {
        return std::unexpected("the stored build of " + package.app + " is gone");
      }
      auto target = work / "build" / "lib" / package.app;
      if (auto copied = snapshot_tree(package.build, target); !copied) {
        return std::unexpected(copied.error());
      }
    }
  }
  return {};
}

namespace {

// Entries of the store's `dir` with their last use, dot-named leftovers of an
// interrupted unpack or build included (`leftover`).
struct StoreEntry {
  fs::path path;
  std::chrono::system_clock::time_point used;
  bool leftover = false;
};

std::vector<StoreEntry> store_entries(const fs::path& dir)
{
  std::vector<StoreEntry> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) {
      continue;
    }
    out.push_back({it->path(), std::chrono::system_clock::from_time_t(st.st_mtime),
                   it->path().filename().string().starts_with('.')});
  }
  std::sort(out.begin(), out.end(),
            [](const StoreEntry& a, const StoreEntry& b) { return a.used < b.used; });
  return out;
}

} // namespace

namespace {

// Opens (making it when missing) the directory `name` under `parent`, never
// through a link, owned by `owner` when the engine is root.
std::expected<util::Fd, std::string> open_dir_at(int parent, const char* name,
                                                 std::optional<std::pair<uid_t, gid_t>> owner)
{
  if (::mkdirat(parent, name, 0755) == 0 && owner) {
    if (::fchownat(parent, name, owner->first, owner->second, AT_SYMLINK_NOFOLLOW) != 0) {
      return std::unexpected(util::errno_message(std::string("chown ") + name));
    }
  }
  util::Fd fd(::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return std::unexpected(util::errno_message(std::string("open ") + name));
  }
  return fd;
}

std::expected<void, std::string> chown_tree(const fs::path& root, uid_t uid, gid_t gid)
{
  auto tree = util::list_tree(root);
  if (!tree) {
    return std::unexpected(tree.error());
  }
  if (::lchown(root.c_str(), uid, gid) != 0) {
    return std::unexpected(util::errno_message("chown " + root.string()));
  }
  for (const auto& entry : *tree) {
    if (::lchown((root / entry.relative).c_str(), uid, gid) != 0) {
      return std::unexpected(util::errno_message("chown " + entry.relative.string()));
    }
  }
  return {};
}

} // namespace

std::expected<void, std::string> place_packages_live(const std::vector<PreparedPackage>& packages,
                                                     const fs::path& work,
                                                     const fs::path& staging)
{
  util::Fd work_fd(::open(work.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!work_fd || ::fstat(work_fd.get(), &st) != 0) {
    return std::unexpected(util::errno_message("open " + work.string()));
  }
  std::optional<std::pair<uid_t, gid_t>> owner;
  if (::geteuid() == 0 && st.st_uid != 0) {
    owner = std::pair{st.st_uid, st.st_gid};
  }
  for (const auto& package : packages) {
    auto sources = staging / "deps" / package.app;
    auto build = staging / "lib" / package.app;
    if (auto made = make_dirs(staging / "deps"); !made) {
      return std::unexpected(made.error());
    }
    if (auto made = make_dirs(staging / "lib"); !made) {
      return std::unexpected(made.error());
    }
    if (auto copied = snapshot_tree(package.sources, sources); !copied) {
      return std::unexpected(copied.error());
    }
    if (!is_dir(package.build)) {
      return std::unexpected("the stored build of " + package.app + " is gone");
    }
    if (auto copied = snapshot_tree(package.build, build); !copied) {
      return std::unexpected(copied.error());
    }
    if (owner) {
      for (const auto& dir : {sources, build}) {
        if (auto owned = chown_tree(dir, owner->first, owner->second); !owned) {
          return std::unexpected(owned.error());
        }
      }
    }
  }
  auto deps = open_dir_at(work_fd.get(), "deps", owner);
  auto build = open_dir_at(work_fd.get(), "build", owner);
  if (!deps || !build) {
    return std::unexpected(!deps ? deps.error() : build.error());
  }
  auto lib = open_dir_at(build->get(), "lib", owner);
  if (!lib) {
    return std::unexpected(lib.error());
  }
  util::Fd staged_deps(::open((staging / "deps").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  util::Fd staged_lib(::open((staging / "lib").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!staged_deps || !staged_lib) {
    return std::unexpected(util::errno_message("open " + staging.string()));
  }
  for (const auto& package : packages) {
    const char* name = package.app.c_str();
    // RENAME_NOREPLACE: whatever the job put there stays, and this fails.
    if (::renameat2(staged_deps.get(), name, deps->get(), name, RENAME_NOREPLACE) != 0 ||
        ::renameat2(staged_lib.get(), name, lib->get(), name, RENAME_NOREPLACE) != 0) {
      return std::unexpected(util::errno_message("place " + package.app));
    }
  }
  return {};
}

PackageStoreStats package_store_stats()
{
  PackageStoreStats stats;
  auto root = packages_root();
  for (const auto& [dir, count] :
       {std::pair{root / "sources", &stats.sources}, std::pair{root / "builds", &stats.builds}}) {
    for (const auto& entry : store_entries(dir)) {
      if (entry.leftover) {
        continue;
      }
      ++*count;
      if (auto tree = util::list_tree(entry.path); tree) {
        for (const auto& item : *tree) {
          stats.bytes += item.size;
        }
      }
    }
  }
  return stats;
}

std::uint64_t bound_package_store(std::size_t keep)
{
  std::uint64_t removed = 0;
  auto now = std::chrono::system_clock::now();
  auto root = packages_root();
  for (const auto& dir : {root / "sources", root / "builds"}) {
    auto entries = store_entries(dir);
    std::size_t kept = 0;
    for (const auto& entry : entries) {
      kept += entry.leftover ? 0 : 1;
    }
    for (const auto& entry : entries) {
      bool stale_leftover = entry.leftover && now - entry.used > kInUseWindow;
      bool over = !entry.leftover && kept > keep && now - entry.used > kInUseWindow;
      if ((stale_leftover || over) && util::remove_tree(entry.path)) {
        ++removed;
        kept -= entry.leftover ? 0 : 1;
      }
    }
  }
  return removed;
}

std::uint64_t prune_package_store(std::int64_t max_age_seconds)
{
  auto root = packages_root();
  auto now = std::chrono::system_clock::now();
  std::uint64_t removed = 0;
  for (const auto& dir : {root / "sources", root / "builds"}) {
    for (const auto& entry : store_entries(dir)) {
      if ((max_age_seconds == 0 || now - entry.used > std::chrono::seconds(max_age_seconds)) &&
          util::remove_tree(entry.path)) {
        removed += entry.leftover ? 0 : 1;
      }
    }
  }
  return removed;
}

} // namespace sandbox::compiler
