#include "compiler/source_mirrors.h"

#include "compiler/source_snapshot.h"
#include "incremental/tree_stamps.h"
#include "util/fs.h"
#include "util/hash.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <map>
#include <mutex>

namespace sandbox::compiler {

namespace {

constexpr std::size_t kMaxMirrors = 8;
// An entry copied less than this after its last change may have changed
// again within the same timestamp tick: it is copied again.
constexpr std::int64_t kRacyNs = 2'000'000'000;
constexpr std::string_view kRootPrefix = "sandbox-mirrors-";

struct Copied {
  fs::file_type type = fs::file_type::none;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::uint64_t inode = 0;
  std::int64_t copied_at_ns = 0;

  [[nodiscard]] bool still(const util::TreeEntry& e) const
  {
    return type == e.type && size == e.size && mtime_ns == e.mtime_ns && ctime_ns == e.ctime_ns &&
           inode == e.inode && ctime_ns < copied_at_ns - kRacyNs;
  }
};

// Names in `dir` (not . and ..), or nullopt when it cannot be read.
std::optional<std::vector<std::string>> names_in(const fs::path& dir)
{
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return std::nullopt;
  std::vector<std::string> out;
  while (auto* entry = ::readdir(d)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") out.push_back(std::move(name));
  }
  ::closedir(d);
  return out;
}

} // namespace

struct Mirror {
  std::string key;
  fs::path dir; // src/ (the tree) and beams/ (prior BEAMs) while parked
  std::map<std::string, Copied> entries; // relative path -> the source's identity when copied
  std::map<std::string, std::string> beams; // file name -> SHA-256
  std::vector<std::string> lent_names;      // top-level names moved into a worker
  bool beams_lent = false;
  std::uint64_t used = 0;

  // Brings the copy in step with `source` and `prior`; returns how many
  // entries were copied.
  std::expected<std::size_t, std::string> sync(const fs::path& source, const std::vector<PriorBeam>& prior);
};

namespace {

class Mirrors {
public:
  void enable()
  {
    std::lock_guard lock(m_mutex);
    m_enabled = true;
    remove_orphans();
  }

  void disable()
  {
    std::map<std::string, std::unique_ptr<Mirror>> parked;
    fs::path root;
    {
      std::lock_guard lock(m_mutex);
      m_enabled = false;
      parked.swap(m_parked);
      root.swap(m_root);
    }
    if (!root.empty()) (void)util::remove_tree(root);
  }

  std::size_t parked()
  {
    std::lock_guard lock(m_mutex);
    return m_parked.size();
  }

  // The parked copy of `key`, or a new empty one; nullptr when disabled or
  // no directory can be made.
  std::unique_ptr<Mirror> take(const std::string& key)
  {
    std::lock_guard lock(m_mutex);
    if (!m_enabled) return nullptr;
    if (auto it = m_parked.find(key); it != m_parked.end()) {
      auto mirror = std::move(it->second);
      m_parked.erase(it);
      return mirror;
    }
    if (m_root.empty()) {
      auto made = util::TempDir::create(util::default_temp_root(), fmt::format("{}{}-", kRootPrefix, ::getpid()));
      if (!made) return nullptr;
      m_root = made->keep();
    }
    auto mirror = std::make_unique<Mirror>();
    mirror->key = key;
    mirror->dir = m_root / std::to_string(++m_serial);
    std::error_code ec;
    fs::create_directories(mirror->dir / "src", ec);
    if (!ec) fs::create_directories(mirror->dir / "beams", ec);
    // The beams directory is moved into the worker's /prior as it is.
    if (ec || ::chmod((mirror->dir / "beams").c_str(), 0755) != 0) {
      (void)util::remove_tree(mirror->dir);
      return nullptr;
    }
    return mirror;
  }

  void park(std::unique_ptr<Mirror> mirror)
  {
    std::vector<fs::path> removed;
    {
      std::lock_guard lock(m_mutex);
      if (!m_enabled || m_root.empty() || !util::is_within(m_root, mirror->dir)) {
        removed.push_back(mirror->dir);
      } else {
        mirror->used = ++m_clock;
        auto& slot = m_parked[mirror->key];
        if (slot) removed.push_back(slot->dir); // a concurrent job's copy: the newer one stays
        slot = std::move(mirror);
        while (m_parked.size() > kMaxMirrors) {
          auto oldest = m_parked.begin();
          for (auto it = m_parked.begin(); it != m_parked.end(); ++it) {
            if (it->second->used < oldest->second->used) oldest = it;
          }
          removed.push_back(oldest->second->dir);
          m_parked.erase(oldest);
        }
      }
    }
    for (const auto& dir : removed) (void)util::remove_tree(dir);
  }

private:
  // The copies of engines that are gone: <prefix><pid>-XXXXXX of this user
  // whose pid no longer runs.
  void remove_orphans()
  {
    auto parent = util::default_temp_root();
    auto names = names_in(parent);
    if (!names) return;
    for (const auto& name : *names) {
      if (!name.starts_with(kRootPrefix)) continue;
      auto rest = name.substr(kRootPrefix.size());
      auto dash = rest.find('-');
      if (dash == std::string::npos) continue;
      pid_t pid = 0;
      try {
        pid = static_cast<pid_t>(std::stol(rest.substr(0, dash)));
      } catch (const std::exception&) {
        continue;
      }
      struct stat st {};
      if (pid <= 0 || pid == ::getpid() || ::lstat((parent / name).c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
          st.st_uid != ::geteuid()) {
        continue;
      }
      if (::kill(pid, 0) != 0 && errno == ESRCH) {
        (void)util::remove_tree(parent / name);
      }
    }
  }

  std::mutex m_mutex;
  bool m_enabled = false;
  fs::path m_root;
  std::map<std::string, std::unique_ptr<Mirror>> m_parked;
  std::uint64_t m_clock = 0;
  std::uint64_t m_serial = 0;
};

Mirrors& mirrors()
{
  static Mirrors instance;
  return instance;
}

} // namespace

std::expected<std::size_t, std::string> Mirror::sync(const fs::path& source, const std::vector<PriorBeam>& prior)
{
  SnapshotLimits limits;
  auto tree = util::list_tree(source);
  if (!tree) return std::unexpected(tree.error());
  if (tree->size() > limits.max_entries) {
    return std::unexpected(fmt::format("the sandbox has more than {} entries", limits.max_entries));
  }
  auto src = dir / "src";
  std::map<std::string, const util::TreeEntry*> now;
  for (const auto& e : *tree) now.emplace(e.relative.string(), &e);
  // What is gone or changed kind goes first, children before their parent.
  for (auto it = entries.rbegin(); it != entries.rend();) {
    auto found = now.find(it->first);
    if (found != now.end() && found->second->type == it->second.type) {
      ++it;
      continue;
    }
    if (auto removed = util::remove_tree(src / it->first); !removed) return std::unexpected(removed.error());
    it = decltype(it)(entries.erase(std::next(it).base()));
  }
  std::size_t copied = 0;
  std::uint64_t total = 0;
  auto copied_at = incremental::now_ns();
  for (const auto& e : *tree) { // sorted: a directory before what it holds
    auto relative = e.relative.string();
    auto to = src / e.relative;
    auto known = entries.find(relative);
    if (e.type == fs::file_type::regular) {
      total += e.size;
      if (total > limits.max_total_bytes) {
        return std::unexpected(fmt::format("the sandbox holds more than {} bytes", limits.max_total_bytes));
      }
    }
    if (e.type == fs::file_type::directory) {
      if (known == entries.end()) {
        std::error_code ec;
        fs::create_directory(to, ec);
        if (ec || ::chmod(to.c_str(), 0755) != 0) return std::unexpected("cannot create " + to.string());
      }
    } else if (e.type == fs::file_type::regular || e.type == fs::file_type::symlink) {
      if (known != entries.end() && known->second.still(e)) continue;
      if (known != entries.end() && ::unlink(to.c_str()) != 0 && errno != ENOENT) {
        return std::unexpected(util::errno_message("cannot replace " + to.string()));
      }
      auto done = copy_listed_entry(source / e.relative, to, e, limits.max_total_bytes);
      if (!done || !*done) {
        entries.erase(relative);
        if (!done) return std::unexpected(done.error());
        continue;
      }
      ++copied;
    } else {
      continue; // fifos, sockets and devices are not sources
    }
    entries[relative] = Copied{e.type, e.size, e.mtime_ns, e.ctime_ns, e.inode, copied_at};
  }

  std::map<std::string, std::string> wanted;
  for (const auto& beam : prior) {
    if (!prior_beam_name(beam.file_name)) {
      return std::unexpected("bad BEAM name " + beam.file_name);
    }
    wanted[beam.file_name] = beam.sha256.empty() ? util::sha256_hex(beam.bytes) : beam.sha256;
  }
  auto beams_dir = dir / "beams";
  for (auto it = beams.begin(); it != beams.end();) {
    auto found = wanted.find(it->first);
    if (found != wanted.end() && found->second == it->second) {
      ++it;
      continue;
    }
    if (::unlink((beams_dir / it->first).c_str()) != 0 && errno != ENOENT) {
      return std::unexpected(util::errno_message("cannot remove " + it->first));
    }
    it = beams.erase(it);
  }
  for (const auto& beam : prior) {
    if (beams.contains(beam.file_name)) continue;
    if (auto written = util::write_new_file(beams_dir / beam.file_name, beam.bytes, 0644); !written) {
      return std::unexpected(written.error());
    }
    beams[beam.file_name] = wanted[beam.file_name];
    ++copied;
  }
  return copied;
}

void enable_source_mirrors() { mirrors().enable(); }
void disable_source_mirrors() { mirrors().disable(); }
std::size_t kept_source_mirrors() { return mirrors().parked(); }

LentSources::LentSources(LentSources&& other) noexcept
  : m_mirror(std::move(other.m_mirror)), m_sandbox_host(std::move(other.m_sandbox_host)),
    m_prior_host(std::move(other.m_prior_host)), m_copied(other.m_copied), m_reused(other.m_reused)
{
  other.m_sandbox_host.clear();
}

LentSources::~LentSources() { give_back(); }

void LentSources::give_back()
{
  if (m_sandbox_host.empty()) return;
  bool whole = m_mirror != nullptr;
  if (m_mirror) {
    auto src = m_mirror->dir / "src";
    for (const auto& name : m_mirror->lent_names) {
      if (::rename((m_sandbox_host / name).c_str(), (src / name).c_str()) != 0) whole = false;
    }
    if (m_mirror->beams_lent &&
        ::rename((m_prior_host / "beams").c_str(), (m_mirror->dir / "beams").c_str()) != 0) {
      whole = false;
    }
    m_mirror->lent_names.clear();
    m_mirror->beams_lent = false;
  }
  // Whatever could not go back is removed with the copy; the directories
  // are empty for the worker's next job either way.
  (void)util::empty_directory(m_sandbox_host);
  (void)util::empty_directory(m_prior_host);
  if (m_mirror) {
    if (whole) {
      mirrors().park(std::move(m_mirror));
    } else {
      (void)util::remove_tree(m_mirror->dir);
    }
    m_mirror.reset();
  }
  m_sandbox_host.clear();
}

std::expected<LentSources, std::string> lend_sources(const std::string& key, const fs::path& source,
                                                     const fs::path& sandbox_host, const fs::path& prior_host,
                                                     const std::vector<PriorBeam>& prior)
{
  LentSources lent;
  lent.m_sandbox_host = sandbox_host;
  lent.m_prior_host = prior_host;
  auto mirror = key.empty() ? nullptr : mirrors().take(key);
  if (mirror) {
    lent.m_reused = !mirror->entries.empty();
    auto synced = mirror->sync(source, prior);
    if (!synced) {
      (void)util::remove_tree(mirror->dir); // in an unknown state: not kept
      return std::unexpected(synced.error());
    }
    lent.m_copied = *synced;
    lent.m_mirror = std::move(mirror);
    auto& m = *lent.m_mirror;
    auto names = names_in(m.dir / "src");
    bool moved = names.has_value();
    for (const auto& name : names.value_or(std::vector<std::string>{})) {
      if (::rename((m.dir / "src" / name).c_str(), (sandbox_host / name).c_str()) != 0) {
        moved = false;
        break;
      }
      m.lent_names.push_back(name);
    }
    if (moved && !prior.empty()) {
      moved = ::rename((m.dir / "beams").c_str(), (prior_host / "beams").c_str()) == 0;
      m.beams_lent = moved;
    }
    if (moved) return lent;
    // Another file system, say: give the copy back, and copy afresh.
    auto failed = std::move(lent.m_mirror);
    lent.give_back();
    lent.m_sandbox_host = sandbox_host;
    lent.m_prior_host = prior_host;
    if (failed) (void)util::remove_tree(failed->dir);
  }
  lent.m_reused = false;
  if (auto copied = snapshot_tree(source, sandbox_host); !copied) {
    return std::unexpected(copied.error());
  }
  if (!prior.empty()) {
    if (auto placed = place_prior_beams(prior_host / "beams", prior); !placed) {
      return std::unexpected(placed.error());
    }
  }
  return lent;
}

} // namespace sandbox::compiler
