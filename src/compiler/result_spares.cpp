#include "compiler/result_spares.h"

#include "compiler/compile_job.h"
#include "compiler/engine_state.h"
#include "incremental/tree_watch.h"
#include "util/fd.h"
#include "util/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace sandbox::compiler {

namespace inc = sandbox::incremental;

std::optional<CompileInfo> hit_result(const CacheState& state, const inc::ObjectStore& store,
                                      const core::CompileOptions& options)
{
  auto info = materialize(state, store, options);
  if (!info) {
    return std::nullopt;
  }
  auto dependencies = restore_dependencies(state.dependencies, info->temp_dir, options);
  if (!dependencies) {
    (void)util::remove_tree(info->temp_dir);
    return std::nullopt;
  }
  info->dependencies = std::move(*dependencies);
  return std::move(*info);
}

namespace {

constexpr std::size_t kMaxSpares = 16;
constexpr auto kMaxWait = std::chrono::seconds(5);

struct Spare {
  std::string generation;
  fs::path parent;
  bool preparing = true;
  std::optional<CompileInfo> info;
  std::uint64_t used = 0;
};

struct Job {
  std::string owner;
  std::shared_ptr<const CacheState> state;
  inc::ObjectStore store;
  core::CompileOptions options;
  std::string generation;
};

class Spares {
public:
  Spares() = default;
  Spares(const Spares&) = delete;
  Spares& operator=(const Spares&) = delete;
  ~Spares() { disable(); } // an exit that did not stop the engine first

  void enable()
  {
    std::lock_guard lock(m_mutex);
    if (m_enabled) return;
    m_enabled = true;
    m_stopping = false;
    open_registry();
    m_thread = std::thread([this] { run(); });
  }

  void disable()
  {
    {
      std::lock_guard lock(m_mutex);
      if (!m_enabled) return;
      m_stopping = true;
    }
    m_changed.notify_all();
    m_thread.join();
    std::lock_guard lock(m_mutex);
    for (auto& [owner, spare] : m_spares) discard(spare);
    m_spares.clear();
    m_queue.clear();
    if (m_registry) {
      ::unlink(m_registry_path.c_str());
      m_registry.reset();
    }
    m_enabled = false;
    m_changed.notify_all(); // a command waiting for a spare goes on without it
  }

  void prepare(const std::string& owner, const std::shared_ptr<const CacheState>& shared,
               const inc::ObjectStore& store, const core::CompileOptions& options)
  {
    std::lock_guard lock(m_mutex);
    if (!m_enabled || m_stopping) return;
    const auto& state = *shared;
    auto parent = options.temp_dir.value_or(util::default_temp_root());
    auto it = m_spares.find(owner);
    if (it != m_spares.end()) {
      if (it->second.generation == state.generation && it->second.parent == parent) return;
      discard(it->second);
      m_spares.erase(it);
    }
    evict();
    m_spares[owner] = Spare{state.generation, parent, true, std::nullopt, ++m_clock};
    m_queue.push_back(Job{owner, shared, store, options, state.generation});
    m_changed.notify_all();
  }

  std::optional<CompileInfo> take(const std::string& owner, const std::string& generation, const fs::path& parent)
  {
    std::unique_lock lock(m_mutex);
    if (!m_enabled) return std::nullopt;
    auto it = m_spares.find(owner);
    if (it == m_spares.end()) return std::nullopt;
    if (it->second.generation != generation || it->second.parent != parent) {
      discard(it->second);
      m_spares.erase(it);
      write_registry();
      return std::nullopt;
    }
    // Being prepared: it is nearer done than a new one would be.
    m_changed.wait_for(lock, kMaxWait, [&] {
      auto now = m_spares.find(owner);
      return now == m_spares.end() || !now->second.preparing || now->second.generation != generation;
    });
    it = m_spares.find(owner);
    if (it == m_spares.end() || it->second.preparing || it->second.generation != generation || !it->second.info) {
      return std::nullopt;
    }
    auto info = std::move(*it->second.info);
    m_spares.erase(it);
    // Untouched since it was written: its watch has nothing to report.
    auto changes = inc::TreeWatcher::instance().changes(info.temp_dir, inc::WatchConsumer::stamps);
    inc::TreeWatcher::instance().forget(info.temp_dir);
    struct stat st {};
    bool intact = changes && changes->empty() && ::lstat(info.temp_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    if (!intact) {
      (void)util::remove_tree(info.temp_dir);
    }
    write_registry();
    return intact ? std::optional<CompileInfo>(std::move(info)) : std::nullopt;
  }

private:
  void run()
  {
    std::unique_lock lock(m_mutex);
    while (true) {
      m_changed.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
      if (m_stopping) return;
      auto job = std::move(m_queue.front());
      m_queue.pop_front();
      if (auto it = m_spares.find(job.owner); it == m_spares.end() || it->second.generation != job.generation) {
        continue; // replaced before its turn
      }
      lock.unlock();
      auto info = hit_result(*job.state, job.store, job.options);
      if (info) {
        // Watched from now on: whatever touches it makes it unusable.
        (void)inc::TreeWatcher::instance().changes(info->temp_dir, inc::WatchConsumer::stamps);
      }
      lock.lock();
      auto it = m_spares.find(job.owner);
      bool wanted = it != m_spares.end() && it->second.preparing && it->second.generation == job.generation;
      if (wanted && info) {
        it->second.info = std::move(info);
        it->second.preparing = false;
      } else {
        if (info) {
          inc::TreeWatcher::instance().forget(info->temp_dir);
          (void)util::remove_tree(info->temp_dir);
        }
        if (wanted) m_spares.erase(it);
      }
      write_registry();
      m_changed.notify_all();
    }
  }

  void discard(Spare& spare)
  {
    if (spare.info) {
      inc::TreeWatcher::instance().forget(spare.info->temp_dir);
      (void)util::remove_tree(spare.info->temp_dir);
      spare.info.reset();
    }
    // One being prepared is removed by the preparing thread (its generation no longer matches).
    spare.generation.clear();
  }

  void evict()
  {
    while (m_spares.size() >= kMaxSpares) {
      auto oldest = m_spares.end();
      for (auto it = m_spares.begin(); it != m_spares.end(); ++it) {
        if (!it->second.preparing && (oldest == m_spares.end() || it->second.used < oldest->second.used)) oldest = it;
      }
      if (oldest == m_spares.end()) return;
      discard(oldest->second);
      m_spares.erase(oldest);
    }
  }

  // The spares of engines that are gone (their list is not locked) are
  // removed; this engine's list is created and locked.
  void open_registry()
  {
    auto dir = state_dir() / "spares";
    std::error_code ec;
    fs::create_directories(dir, ec);
    fs::permissions(dir, fs::perms::owner_all, ec);
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() != ".list") continue;
      util::Fd fd(::open(it->path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue; // its engine lives
      auto text = util::read_file(it->path(), 1 << 20);
      std::istringstream lines(text ? *text : std::string());
      for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && verify_temp_dir_marker(line)) (void)util::remove_tree(line);
      }
      ::unlink(it->path().c_str());
    }
    m_registry_path = dir / (std::to_string(::getpid()) + ".list");
    m_registry.reset(::open(m_registry_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (m_registry && ::flock(m_registry.get(), LOCK_EX | LOCK_NB) != 0) m_registry.reset();
  }

  void write_registry()
  {
    if (!m_registry) return;
    std::string text;
    for (const auto& [owner, spare] : m_spares) {
      if (spare.info) text += spare.info->temp_dir.string() + "\n";
    }
    if (::ftruncate(m_registry.get(), 0) == 0) {
      [[maybe_unused]] auto n = ::pwrite(m_registry.get(), text.data(), text.size(), 0);
    }
  }

  std::mutex m_mutex;
  std::condition_variable m_changed;
  bool m_enabled = false;
  bool m_stopping = false;
  std::map<std::string, Spare> m_spares; // by owner
  std::deque<Job> m_queue;
  std::thread m_thread;
  std::uint64_t m_clock = 0;
  util::Fd m_registry;
  fs::path m_registry_path;
};

Spares& spares()
{
  static Spares s;
  return s;
}

} // namespace

void enable_result_spares()
{
  spares().enable();
}

void disable_result_spares()
{
  spares().disable();
}

void prepare_spare(const std::string& owner, const std::shared_ptr<const CacheState>& state,
                   const inc::ObjectStore& store, const core::CompileOptions& options)
{
  spares().prepare(owner, state, store, options);
}

std::optional<CompileInfo> take_spare(const std::string& owner, const std::string& generation,
                                      const std::filesystem::path& parent)
{
  return spares().take(owner, generation, parent);
}

std::optional<CompileInfo> take_spare_updated(const std::string& owner, const CacheState& from, const CacheState& to,
                                              const inc::ObjectStore& store, const core::CompileOptions& options)
{
  // A partial compile's result has no dependencies restored; a spare may.
  if (!from.dependencies.empty() || !to.dependencies.empty()) {
    return std::nullopt;
  }
  auto info = take_spare(owner, from.generation, options.temp_dir.value_or(util::default_temp_root()));
  if (!info) {
    return std::nullopt;
  }
  auto ebin = info->temp_dir / "ebin";
  auto fail = [&] {
    (void)util::remove_tree(info->temp_dir);
    return std::nullopt;
  };
  for (const auto& [module, record] : from.modules) {
    if (!to.modules.contains(module)) ::unlink((ebin / (module + ".beam")).c_str());
  }
  info->beam_files.clear();
  info->beam_bytes.reset();
  info->modules.clear();
  for (const auto& [module, record] : to.modules) {
    auto path = ebin / (module + ".beam");
    auto was = from.modules.find(module);
    if (was == from.modules.end() || was->second.beam_sha256 != record.beam_sha256) {
      auto bytes = store.get(record.beam_sha256);
      if (!bytes || !util::write_file_replace(path, *bytes, 0644)) return fail();
    }
    info->beam_files.push_back(path);
    info->modules.push_back(module);
  }
  if (from.app != to.app) {
    if (from.app) ::unlink((ebin / from.app->first).c_str());
    info->app_file.reset();
    if (to.app) {
      auto bytes = store.get(to.app->second);
      if (!bytes || !util::write_file_replace(ebin / to.app->first, *bytes, 0644)) return fail();
      info->app_file = ebin / to.app->first;
    }
  }
  return info;
}

} // namespace sandbox::compiler
