#include "incremental/tree_watch.h"

#include "util/fd.h"
#include "util/fs.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace sandbox::incremental {

namespace {

constexpr std::uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_EXCL_UNLINK |
                                IN_ONLYDIR;
// Past this many changed paths a consumer looks at the whole tree instead.
constexpr std::size_t kMaxDirty = 10'000;
// A tree that could not be watched is tried again after this long.
constexpr auto kRetryAfter = std::chrono::seconds(60);
constexpr std::size_t kConsumers = 2;

using Clock = std::chrono::steady_clock;

std::string join(const std::string& dir, std::string_view name)
{
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

} // namespace

struct Tree {
  bool watched = false; // false: could not be watched, looked at in full
  Clock::time_point failed_at{};
  std::map<int, std::string> dirs; // watch descriptor -> relative directory ("" is the root)
  std::array<std::set<std::string>, kConsumers> dirty;
  std::array<bool, kConsumers> known{}; // the consumer has looked at the whole tree since the watch began
  std::uint64_t used = 0;
};

struct TreeWatcher::State {
  std::mutex mutex;
  util::Fd fd;
  std::string unavailable;
  std::size_t max_trees = 0;
  std::size_t max_dirs = 0;
  std::map<std::string, Tree> trees; // by root
  std::unordered_map<int, std::string> roots; // watch descriptor -> root
  std::uint64_t clock = 0;
  std::uint64_t overflows = 0;

  void forget(const std::string& root)
  {
    auto it = trees.find(root);
    if (it == trees.end()) return;
    for (const auto& [wd, dir] : it->second.dirs) {
      ::inotify_rm_watch(fd.get(), wd);
      roots.erase(wd);
    }
    trees.erase(it);
  }

  // Adds watches on `relative` and every directory under it; false when the
  // tree cannot be watched whole.
  bool watch_dirs(const std::string& root, Tree& tree, const std::string& relative)
  {
    std::vector<std::string> pending{relative};
    while (!pending.empty()) {
      auto dir = std::move(pending.back());
      pending.pop_back();
      if (tree.dirs.size() >= max_dirs) return false;
      auto full = dir.empty() ? fs::path(root) : fs::path(root) / dir;
      int wd = ::inotify_add_watch(fd.get(), full.c_str(), kMask);
      if (wd < 0) {
        // Gone since it was listed: its parent's event says so.
        if (errno == ENOENT || errno == ENOTDIR) continue;
        return false; // ENOSPC: the user's watch limit; EACCES
      }
      auto owner = roots.find(wd);
      if (owner != roots.end() && owner->second != root) {
        return false; // the same directory in another watched tree (nested roots)
      }
      roots[wd] = root;
      tree.dirs[wd] = dir;
      std::error_code ec;
      for (fs::directory_iterator it(full, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code type_ec;
        if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) {
          pending.push_back(join(dir, it->path().filename().string()));
        }
      }
    }
    return true;
  }

  void unwatch_under(Tree& tree, const std::string& relative)
  {
    for (auto it = tree.dirs.begin(); it != tree.dirs.end();) {
      if (!it->second.empty() && path_under(it->second, relative)) {
        ::inotify_rm_watch(fd.get(), it->first);
        roots.erase(it->first);
        it = tree.dirs.erase(it);
      } else {
        ++it;
      }
    }
  }

  void mark(Tree& tree, const std::string& path)
  {
    for (std::size_t c = 0; c < kConsumers; ++c) {
      if (!tree.known[c]) continue;
      tree.dirty[c].insert(path);
      if (tree.dirty[c].size() > kMaxDirty) {
        tree.known[c] = false;
        tree.dirty[c].clear();
      }
    }
  }

  void event(const inotify_event& ev)
  {
    if (ev.mask & IN_Q_OVERFLOW) {
      ++overflows;
      std::vector<std::string> all;
      for (const auto& [root, tree] : trees) all.push_back(root);
      for (const auto& root : all) forget(root);
      return;
    }
    auto owner = roots.find(ev.wd);
    if (owner == roots.end()) return; // a watch already dropped
    auto root = owner->second;
    auto& tree = trees.at(root);
    auto dir_it = tree.dirs.find(ev.wd);
    if (dir_it == tree.dirs.end()) return;
    auto dir = dir_it->second;
    if (ev.mask & IN_IGNORED) {
      roots.erase(ev.wd);
      tree.dirs.erase(dir_it);
      if (dir.empty()) forget(root);
      return;
    }
    if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
      if (dir.empty()) forget(root); // the root itself went away
      return;                        // a directory's own event: its parent's says where
    }
    if (ev.len == 0) {
      return; // a directory's own change: its parent's event names it
    }
    auto path = join(dir, ev.name);
    mark(tree, path);
    if (ev.mask & IN_ISDIR) {
      if (ev.mask & (IN_MOVED_FROM | IN_DELETE)) {
        unwatch_under(tree, path);
      } else if (ev.mask & (IN_CREATE | IN_MOVED_TO)) {
        if (!watch_dirs(root, tree, path)) forget(root);
      }
    }
  }

  void drain()
  {
    alignas(inotify_event) char buffer[64 * 1024];
    for (;;) {
      auto n = ::read(fd.get(), buffer, sizeof buffer);
      if (n <= 0) return; // EAGAIN: drained
      for (char* p = buffer; p < buffer + n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(p);
        event(*ev);
        p += sizeof(inotify_event) + ev->len;
      }
    }
  }

  void evict()
  {
    while (trees.size() > max_trees) {
      auto oldest = trees.begin();
      for (auto it = trees.begin(); it != trees.end(); ++it) {
        if (it->second.used < oldest->second.used) oldest = it;
      }
      forget(oldest->first);
    }
  }
};

WatchSupport probe_watch_support()
{
  util::Fd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) {
    return {false, std::string("inotify_init1: ") + std::strerror(errno) +
                     "; trees are stamped in full on every compile"};
  }
  std::string limit = "unknown";
  if (auto text = util::read_file("/proc/sys/fs/inotify/max_user_watches", 64)) {
    limit = text->substr(0, text->find('\n'));
  }
  return {true, "inotify; fs.inotify.max_user_watches " + limit + " directories for this user"};
}

TreeWatcher& TreeWatcher::instance()
{
  static TreeWatcher watcher;
  return watcher;
}

TreeWatcher::~TreeWatcher()
{
  delete m_state;
}

void TreeWatcher::enable(std::size_t max_trees, std::size_t max_dirs)
{
  if (m_state == nullptr) {
    m_state = new State;
  }
  std::lock_guard lock(m_state->mutex);
  m_state->max_trees = max_trees;
  m_state->max_dirs = max_dirs;
  if (!m_state->fd) {
    m_state->fd.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    m_state->unavailable = m_state->fd ? "" : std::string("inotify_init1: ") + std::strerror(errno);
  }
  m_state->evict();
}

void TreeWatcher::disable()
{
  if (m_state == nullptr) return;
  std::lock_guard lock(m_state->mutex);
  m_state->trees.clear();
  m_state->roots.clear();
  m_state->fd.reset();
  m_state->max_trees = 0;
}

bool TreeWatcher::enabled()
{
  if (m_state == nullptr) return false;
  std::lock_guard lock(m_state->mutex);
  return m_state->fd && m_state->max_trees > 0;
}

WatchedChanges TreeWatcher::changes(const fs::path& root_path, WatchConsumer consumer)
{
  if (m_state == nullptr) return std::nullopt;
  auto& s = *m_state;
  std::lock_guard lock(s.mutex);
  if (!s.fd || s.max_trees == 0) return std::nullopt;
  s.drain();
  auto root = root_path.string();
  auto c = static_cast<std::size_t>(consumer);
  auto it = s.trees.find(root);
  if (it != s.trees.end() && !it->second.watched && Clock::now() - it->second.failed_at > kRetryAfter) {
    s.trees.erase(it);
    it = s.trees.end();
  }
  if (it == s.trees.end()) {
    auto& tree = s.trees[root];
    tree.used = ++s.clock;
    tree.watched = s.watch_dirs(root, tree, "");
    if (!tree.watched) {
      for (const auto& [wd, dir] : tree.dirs) {
        ::inotify_rm_watch(s.fd.get(), wd);
        s.roots.erase(wd);
      }
      tree.dirs.clear();
      tree.failed_at = Clock::now();
    } else {
      tree.known[c] = true;
    }
    s.evict();
    return std::nullopt;
  }
  auto& tree = it->second;
  tree.used = ++s.clock;
  if (!tree.watched) return std::nullopt;
  if (!tree.known[c]) {
    tree.known[c] = true;
    tree.dirty[c].clear();
    return std::nullopt;
  }
  return std::exchange(tree.dirty[c], {});
}

void TreeWatcher::forget(const fs::path& root)
{
  if (m_state == nullptr) return;
  std::lock_guard lock(m_state->mutex);
  if (m_state->fd) m_state->drain();
  m_state->forget(root.string());
}

WatchStatus TreeWatcher::status()
{
  WatchStatus out;
  if (m_state == nullptr) return out;
  auto& s = *m_state;
  std::lock_guard lock(s.mutex);
  out.enabled = s.max_trees > 0;
  out.unavailable = s.unavailable;
  if (s.fd) s.drain();
  for (const auto& [root, tree] : s.trees) {
    if (tree.watched) {
      ++out.trees;
      out.watches += tree.dirs.size();
    } else {
      ++out.fallbacks;
    }
  }
  out.overflows = s.overflows;
  return out;
}

} // namespace sandbox::incremental
