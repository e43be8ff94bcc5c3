#pragma once
// Watches sandbox trees with inotify so that a long-running engine looks again
// only at what changed since it last looked: a compile with nothing changed
// costs the same for 30 files and for 3,000. Off in a one-shot process (a
// watch outlives nothing there); the background engine and `sandbox serve`
// turn it on.
//
// The kernel queues an event while the system call that changes a file runs,
// so events drained at the start of a compile cover every change made before
// it. Whatever the watch cannot vouch for is reported as unknown and the
// caller looks at the whole tree, as without a watch: the first look at a
// tree, a tree whose watches could not all be set (the per-tree cap or the
// user's inotify limit), a queue overflow, the root itself moved or removed,
// too many changes at once.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace sandbox::incremental {

namespace fs = std::filesystem;

// Each user of the watch keeps its own view of a tree, so each drains its own
// set of changes.
enum class WatchConsumer : unsigned { stamps = 0, scan = 1 };

// Relative paths (files or directories) that may differ since the consumer's
// previous call for this tree; nullopt when that is not known.
using WatchedChanges = std::optional<std::set<std::string>>;

struct WatchStatus {
  bool enabled = false;
  std::string unavailable; // why inotify could not be used, when enabled
  std::size_t trees = 0;     // trees watched
  std::size_t watches = 0;   // directories watched
  std::size_t fallbacks = 0; // trees that could not be watched: looked at in full every time
  std::uint64_t overflows = 0;
};

// Whether this kernel and user can watch trees: {works, detail} where detail
// names the user's watch limit, or why inotify cannot be used.
struct WatchSupport {
  bool works = false;
  std::string detail;
};
WatchSupport probe_watch_support();

class TreeWatcher {
public:
  static TreeWatcher& instance();

  // Starts watching the trees asked about from now on: at most `max_trees`
  // (the least recently used is dropped) of at most `max_dirs` directories
  // each. A tree with more is not watched.
  void enable(std::size_t max_trees = 64, std::size_t max_dirs = 20'000);
  void disable();
  [[nodiscard]] bool enabled();

  // What may have changed under `root` (a resolved directory) since this
  // consumer last asked. The first call for a tree starts its watch and
  // returns nullopt.
  WatchedChanges changes(const fs::path& root, WatchConsumer consumer);

  // Stops watching `root`.
  void forget(const fs::path& root);

  WatchStatus status();

  TreeWatcher(const TreeWatcher&) = delete;
  TreeWatcher& operator=(const TreeWatcher&) = delete;
  ~TreeWatcher();

private:
  TreeWatcher() = default;
  struct State;
  State* m_state = nullptr;
};

// True when relative `path` is `dir` or lies below it.
inline bool path_under(const std::string& path, const std::string& dir)
{
  return path == dir || (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

// What a consumer last saw of each watched tree (its stamps, its
// description), which the watch's changes then patch. Bounded: the oldest
// tree is dropped first.
template <class View>
class WatchedViews {
public:
  // The view kept for `root`, when `changes` are known; the kept one is
  // dropped either way (the caller keeps the patched one).
  std::optional<View> take(const fs::path& root, const WatchedChanges& changes)
  {
    std::lock_guard lock(m_mutex);
    auto it = m_views.find(root.string());
    if (it == m_views.end()) return std::nullopt;
    std::optional<View> out;
    if (changes) out = std::move(it->second);
    m_views.erase(it);
    return out;
  }

  // Keeps `view` as what `root` is now, while the watch is on.
  void keep(const fs::path& root, const View& view)
  {
    if (!TreeWatcher::instance().enabled()) return;
    std::lock_guard lock(m_mutex);
    if (m_views.size() >= kMaxViews) m_views.erase(m_views.begin());
    m_views[root.string()] = view;
  }

private:
  static constexpr std::size_t kMaxViews = 64;
  std::mutex m_mutex;
  std::map<std::string, View> m_views;
};

} // namespace sandbox::incremental
