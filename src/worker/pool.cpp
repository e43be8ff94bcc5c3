#include "worker/pool.h"

#include "backends/toolchain.h"

#include <algorithm>

namespace sandbox::worker {

namespace {

using Clock = std::chrono::steady_clock;

} // namespace

Lease::Lease(Pool* pool, std::unique_ptr<Worker> worker, std::string sandbox_key, bool reused)
    : m_pool(pool), m_worker(std::move(worker)), m_sandbox_key(std::move(sandbox_key)),
      m_reused(reused)
{
}

Lease::~Lease()
{
  if (m_worker) {
    m_pool->give_back(std::move(m_worker), m_sandbox_key, m_keep, m_recycle);
  }
}

Pool& Pool::global()
{
  static Pool pool;
  return pool;
}

Pool::~Pool() { shutdown(); }

jail::NamespaceRunner& Pool::runner()
{
  std::call_once(m_runner_once, [this] { m_runner = std::make_unique<jail::NamespaceRunner>(); });
  return *m_runner;
}

jail::Isolation Pool::isolation() { return runner().isolation(); }

WorkerProfile Pool::default_profile() const
{
  std::lock_guard lock(m_mutex);
  if (m_settings.profile) {
    return *m_settings.profile;
  }
  // The default limits and environment, with the toolchain jobs asked for
  // last: a host whose users compile with another Elixir gets warm workers
  // of that Elixir.
  core::CompileOptions defaults;
  return WorkerProfile{backends::job_limits(defaults), default_worker_env({}, m_last_toolchain),
                       m_last_toolchain};
}

void Pool::configure(const PoolSettings& settings)
{
  std::unique_lock lock(m_mutex);
  m_settings = settings;
  m_settings.size = std::max<std::size_t>(1, m_settings.size);
  m_settings.prestart = std::min(m_settings.prestart, m_settings.size);
  m_prestart_enabled = true;
  ensure_started(lock);
  m_changed.notify_all();
}

PoolSettings Pool::settings() const
{
  std::lock_guard lock(m_mutex);
  return m_settings;
}

bool Pool::prestarting() const
{
  std::lock_guard lock(m_mutex);
  return m_prestart_enabled;
}

PoolStats Pool::stats() const
{
  std::lock_guard lock(m_mutex);
  return {m_idle.size(), m_busy, m_starting, m_started_total};
}

void Pool::ensure_started(std::unique_lock<std::mutex>&)
{
  if (!m_thread.joinable() && !m_stopping) {
    m_thread = std::thread([this] { maintain(); });
  }
}

void Pool::shutdown()
{
  std::vector<std::unique_ptr<Worker>> doomed;
  std::thread thread;
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
    m_changed.notify_all();
    thread = std::move(m_thread);
  }
  if (thread.joinable()) {
    thread.join();
  }
  {
    std::lock_guard lock(m_mutex);
    for (auto& worker : m_idle) {
      doomed.push_back(std::move(worker));
    }
    for (auto& worker : m_retired) {
      doomed.push_back(std::move(worker));
    }
    m_idle.clear();
    m_retired.clear();
    // Wait for workers being started by acquire() to be handed out.
  }
  doomed.clear();
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [this] { return m_starting == 0; });
  m_stopping = false;
  m_prestart_enabled = false;
}

std::expected<Lease, core::Error> Pool::acquire(const WorkerProfile& profile,
                                                const std::string& sandbox_key, Deadline deadline,
                                                bool fresh_only)
{
  const auto budget_ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  std::unique_lock lock(m_mutex);
  ensure_started(lock);
  if (!m_settings.profile && profile.toolchain_identity() != (m_last_toolchain ? m_last_toolchain->identity
                                                                                 : backends::toolchain_identity())) {
    m_last_toolchain = profile.toolchain && !profile.toolchain->system ? profile.toolchain : nullptr;
  }
  while (true) {
    // A worker bound to this sandbox, then an unbound one with this profile.
    auto take = [&](auto&& match) -> std::unique_ptr<Worker> {
      auto it = std::find_if(m_idle.begin(), m_idle.end(), [&](const auto& worker) {
        return worker->alive() && worker->profile() == profile && match(*worker) &&
               (!fresh_only || (worker->jobs_served == 0 && worker->bound_sandbox.empty()));
      });
      if (it == m_idle.end()) {
        return nullptr;
      }
      auto worker = std::move(*it);
      m_idle.erase(it);
      return worker;
    };
    if (m_settings.reuse_per_sandbox && !sandbox_key.empty() && !fresh_only) {
      if (auto worker = take([&](const Worker& w) { return w.bound_sandbox == sandbox_key; })) {
        ++m_busy;
        m_last_lease = Clock::now();
        m_changed.notify_all();
        return Lease(this, std::move(worker), sandbox_key, true);
      }
    }
    if (auto worker = take([](const Worker& w) { return w.bound_sandbox.empty(); })) {
      ++m_busy;
      m_last_lease = Clock::now();
      m_changed.notify_all(); // the background thread starts a replacement
      bool reused = worker->jobs_served > 0;
      return Lease(this, std::move(worker), sandbox_key, reused);
    }
    if (m_busy + m_idle.size() + m_starting < m_settings.size) {
      ++m_starting;
      lock.unlock();
      auto started = Worker::start(runner(), profile);
      lock.lock();
      --m_starting;
      m_changed.notify_all();
      if (!started) {
        return std::unexpected(started.error());
      }
      ++m_started_total;
      ++m_busy;
      m_last_lease = Clock::now();
      return Lease(this, std::move(*started), sandbox_key, false);
    }
    // Full: make room by retiring an idle worker this job cannot use.
    if (!m_idle.empty()) {
      m_retired.push_back(std::move(m_idle.front()));
      m_idle.erase(m_idle.begin());
      m_changed.notify_all();
      continue;
    }
    if (m_changed.wait_until(lock, deadline) == std::cv_status::timeout &&
        Clock::now() >= deadline) {
      // Every worker stayed busy for the whole of the job's deadline.
      return std::unexpected(core::CompilationTimeout{budget_ms});
    }
  }
}

void Pool::give_back(std::unique_ptr<Worker> worker, const std::string& sandbox_key, bool keep,
                     bool recycle)
{
  std::unique_lock lock(m_mutex);
  --m_busy;
  if (m_settings.reuse_per_sandbox && keep && !sandbox_key.empty() && worker->alive() &&
      !m_stopping && (worker->bound_sandbox.empty() || worker->bound_sandbox == sandbox_key)) {
    worker->bound_sandbox = sandbox_key;
    m_idle.push_back(std::move(worker));
  } else if (recycle && worker->alive() && !m_stopping && worker->bound_sandbox.empty() &&
             worker->jobs_served + 1 < m_settings.reuse_limit) {
    ++worker->jobs_served;
    m_idle.push_back(std::move(worker));
  } else if (m_thread.joinable() && !m_stopping) {
    m_retired.push_back(std::move(worker)); // destroyed in the background
  } else {
    m_changed.notify_all();
    lock.unlock();
    worker.reset(); // no background thread: destroyed here
    return;
  }
  m_changed.notify_all();
}

void Pool::maintain()
{
  std::unique_lock lock(m_mutex);
  while (!m_stopping) {
    // Reap: dead idle workers, and idle ones past the idle timeout.
    auto now = Clock::now();
    for (auto it = m_idle.begin(); it != m_idle.end();) {
      if (!(*it)->alive() || now - (*it)->last_used() > m_settings.idle_timeout) {
        m_retired.push_back(std::move(*it));
        it = m_idle.erase(it);
      } else {
        ++it;
      }
    }
    if (!m_retired.empty()) {
      auto doomed = std::move(m_retired);
      m_retired.clear();
      lock.unlock();
      doomed.clear(); // kills the jails, removes their directories
      lock.lock();
      continue;
    }
    if (m_prestart_enabled) {
      WorkerProfile profile = m_settings.profile.value_or(WorkerProfile{});
      if (!m_settings.profile) {
        lock.unlock();
        profile = default_profile();
        lock.lock();
      }
      std::size_t ready = static_cast<std::size_t>(
        std::count_if(m_idle.begin(), m_idle.end(), [&](const auto& worker) {
          return worker->bound_sandbox.empty() && worker->profile() == profile;
        }));
      if (ready + m_starting < m_settings.prestart &&
          m_busy + m_idle.size() + m_starting < m_settings.size) {
        // Not while a job runs (it would compete for the cores), unless jobs
        // have kept the pool busy for the whole delay.
        auto start_at = m_last_lease + m_settings.replacement_delay;
        if (m_busy > 0 && Clock::now() < start_at) {
          m_changed.wait_until(lock, start_at);
          continue;
        }
        ++m_starting;
        lock.unlock();
        auto started = Worker::start(runner(), profile);
        lock.lock();
        --m_starting;
        if (started) {
          ++m_started_total;
          if (m_stopping) {
            m_retired.push_back(std::move(*started));
          } else {
            m_idle.push_back(std::move(*started));
          }
          m_changed.notify_all();
          continue;
        }
        m_changed.notify_all();
        // A start that fails (no jail on this kernel, ...) is retried later;
        // the jobs themselves report the error.
        m_changed.wait_for(lock, std::chrono::seconds(5));
        continue;
      }
    }
    m_changed.wait_for(lock, std::chrono::milliseconds(500));
  }
  auto doomed = std::move(m_retired);
  m_retired.clear();
  lock.unlock();
  doomed.clear();
}

} // namespace sandbox::worker
