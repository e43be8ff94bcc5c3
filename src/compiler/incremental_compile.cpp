// The incremental pipeline: resolve, scan and lock -> read the cache -> stamp
// the tree -> plan cache_hit, incremental or full (incremental_plan) -> restore
// the stored BEAMs, run the partial rounds (incremental_partial) or one full
// job -> store the state (incremental_state) and count the compile
// (cache_stats). See docs/incremental.md for the design and its limits.

#include "compiler/incremental_compile.h"

#include "backends/toolchain.h"

#include "compiler/after_answer.h"
#include "compiler/cache_stats.h"
#include "compiler/compile_job.h"
#include "compiler/engine_state.h"
#include "compiler/incremental_partial.h"
#include "compiler/incremental_plan.h"
#include "compiler/incremental_state.h"
#include "compiler/result_spares.h"
#include "compiler/sandbox_path.h"
#include "compiler/security_gate.h"
#include "compiler/source_mirrors.h"
#include "incremental/store.h"
#include "util/fs.h"
#include "incremental/tree_stamps.h"
#include "incremental/tree_watch.h"
#include "util/hash.h"
#include "util/time.h"

#include <climits>
#include <cstdlib>
#include <optional>
#include <set>

namespace sandbox::compiler {

namespace {

namespace inc = sandbox::incremental;

// No place to keep a cache: a plain compile, said so.
CompileResult compile_without_cache(const std::string& path, const core::CompileOptions& options,
                                    std::vector<std::string> warnings, const std::string& why)
{
  auto plain = options;
  plain.incremental = false;
  auto result = compile_job(path, plain, {});
  if (result) {
    result->cache_warnings = std::move(warnings);
    result->cache_warnings.push_back("no cache directory: " + why);
  }
  return result;
}

// What a compile leaves to write once it has answered (after_answer.h): the
// cache files and the stats, under the sandbox's lock, which it holds until
// it is done.
struct Persist {
  inc::SandboxLock lock;
  inc::CacheDir dir;
  std::string key;
  inc::ObjectStore store;
  core::CompileOptions options;
  fs::path sandbox;
  std::optional<CacheState> state; // nullopt: nothing to store (a cache hit, a failure)
  inc::TreeStamps before;          // the tree when the compile started
  std::int64_t started_ns = 0;
  std::string strategy;            // "" for a failure
  std::int64_t time_ms = 0;
  CacheStats stats;

  // Returns what could not be done, as cache warnings.
  std::vector<std::string> run();
};

std::vector<std::string> Persist::run()
{
  std::vector<std::string> warnings;
  if (state) {
    // An edit made while compiling is not lost: files that changed since
    // `before` are recorded as unknown, so the next compile sees them.
    auto after = inc::stamp_tree_watched(sandbox, before, INT64_MAX);
    if (after) {
      auto during = inc::diff_trees(before, *after);
      for (const auto* set : {&during.changed, &during.deleted}) {
        for (const auto& p : *set) {
          state->stamps[p].sha256 = "changed-during-compile";
        }
      }
    } else {
      state->stamps.clear();
    }
    state->generation = util::sha256_hex(util::random_bytes(16)).substr(0, 32);
    state->recorded_at_ns = started_ns;
    auto saved = save_state(dir, key, *state);
    if (!saved) {
      warnings.push_back("cache not saved: " + saved.error());
    } else if (objects_present(*state, store)) {
      prepare_spare(dir.path().string(), std::make_shared<const CacheState>(std::move(*state)), store,
                    options); // what the next cache hit hands out
    }
  }
  record_stats(dir, key, stats, strategy, time_ms, strategy.empty(), warnings);
  return warnings;
}

// One incremental compile of a sandbox whose lock is held and whose cache
// directory is open. Everything compares against the tree as it was when the
// compile started (m_before), so an edit made while it runs is not lost.
class Session {
public:
  Session(std::string path, IncrementalRun& run, inc::SandboxLock lock, inc::CacheDir dir,
          const util::Stopwatch& clock)
    : m_path(std::move(path)), m_run(run), m_lock(std::move(lock)), m_dir(std::move(dir)),
      m_owner(m_dir.path().string()), m_clock(clock)
  {
  }

  CompileResult compile(const std::vector<fs::path>& explicit_changed);

private:
  // nullopt: the stored BEAMs could not be restored, compile in full.
  std::optional<CompileResult> cache_hit();
  // nullopt: the partial compile is not sound after all, compile in full.
  std::optional<CompileResult> partial();
  CompileResult full();
  CompileResult finish(CompileInfo info, const CacheState& state, const std::string& strategy,
                       std::vector<std::string> compiled);
  // Writes the cache files and the stats, after the answer when the engine
  // answers first; `state` is nullptr when there is nothing to store.
  void persist(const CacheState* state, const CompileInfo* info, const std::string& strategy, std::int64_t time_ms);
  CompileResult fail(core::Error error);

  const core::CompileOptions& options() const { return *m_run.options; }
  // One cache directory: whose spare result (result_spares.h) is whose.
  const std::string& owner() const { return m_owner; }

  std::string m_path; // as the caller gave it: a full compile's job takes it
  IncrementalRun& m_run;
  std::optional<inc::SandboxLock> m_lock; // handed to the writes after the answer
  inc::CacheDir m_dir;
  std::string m_owner;
  const util::Stopwatch& m_clock;
  CacheStats m_stats;
  std::shared_ptr<const CacheState> m_prev;
  inc::TreeStamps m_before;
  std::int64_t m_started_ns = 0;
  std::string m_fingerprint;
  std::string m_compiler;
  Plan m_plan;
};

CompileResult Session::compile(const std::vector<fs::path>& explicit_changed)
{
  // What the writes after the previous answer could not do.
  for (auto& warning : take_deferred_warnings(owner())) {
    m_run.warnings.push_back("the previous compile: " + warning);
  }
  m_stats = load_stats(m_dir, m_run.key, m_run.warnings);
  if (!options().force_recompile && !options().skip_cache) {
    m_prev = load_state(m_dir, m_run.key, m_run.warnings);
  }
  m_started_ns = inc::now_ns();
  auto before = inc::stamp_tree_watched(m_run.sandbox, m_prev ? m_prev->stamps : inc::TreeStamps{},
                                m_prev ? m_prev->recorded_at_ns : 0);
  if (!before) {
    return std::unexpected(core::InvalidSandboxPath{m_path, before.error()});
  }
  m_before = std::move(*before);
  m_fingerprint = fingerprint(options());
  m_compiler = core::to_string(options().compiler);
  m_plan = plan_compile(m_prev.get(), m_before, explicit_changed, options(), m_fingerprint, m_run.store);

  if (m_plan.strategy == "cache_hit") {
    if (auto hit = cache_hit()) {
      return std::move(*hit);
    }
  }
  if (m_plan.strategy == "incremental") {
    if (auto done = partial()) {
      return std::move(*done);
    }
  } else if (!m_plan.reason.empty() && m_prev) {
    m_run.warnings.push_back("compiling in full: " + m_plan.reason);
  }
  return full();
}

std::optional<CompileResult> Session::cache_hit()
{
  auto parent = options().temp_dir.value_or(util::default_temp_root());
  auto info = take_spare(owner(), m_prev->generation, parent);
  if (!info) {
    info = hit_result(*m_prev, m_run.store, options());
  }
  if (info) {
    info->isolation = {};
    auto result = finish(std::move(*info), *m_prev, "cache_hit", {});
    prepare_spare(owner(), m_prev, m_run.store, options()); // for the next hit
    return result;
  }
  m_run.warnings.push_back("cached BEAMs could not be restored: compiling in full");
  m_plan.strategy = "full";
  m_plan.reason = "cached BEAMs could not be restored";
  return std::nullopt;
}

std::optional<CompileResult> Session::partial()
{
  auto batch = first_batch(m_plan, m_prev->graph);
  auto rounds = run_partial(m_run, *m_prev, m_before, m_plan.diff, batch.files, batch.forced);
  if (!rounds) {
    return fail(rounds.error());
  }
  if (!*rounds) {
    m_run.warnings.push_back("compiling in full: " + rounds->error());
    return std::nullopt;
  }
  auto& outcome = **rounds;
  if (m_prev->app) {
    // The .app lists the modules: keep it only when they are the same.
    std::set<std::string> before;
    std::set<std::string> after;
    for (const auto& [m, r] : m_prev->modules) before.insert(m);
    for (const auto& [m, r] : outcome.state.modules) after.insert(m);
    if (before != after) {
      m_run.warnings.push_back("the set of modules changed: the .app file needs a full compile");
      return std::nullopt;
    }
  }
  // The result prepared for the previous state, with only what changed written.
  auto info = [&]() -> std::expected<CompileInfo, core::Error> {
    if (auto updated = take_spare_updated(owner(), *m_prev, outcome.state, m_run.store, options())) {
      return std::move(*updated);
    }
    return materialize(outcome.state, m_run.store, options());
  }();
  if (!info) {
    return fail(info.error());
  }
  info->warnings = std::move(outcome.warnings);
  info->output = std::move(outcome.output);
  info->resource_usage = outcome.usage;
  info->isolation = outcome.isolation;
  info->worker = std::move(outcome.worker);
  return finish(std::move(*info), outcome.state, "incremental", outcome.compiled);
}

CompileResult Session::full()
{
  auto plain = options();
  plain.incremental = false;
  auto job = compile_job(m_path, plain, {});
  if (!job) {
    return fail(job.error());
  }
  auto state = state_from_full(m_run, *job, m_before);
  if (state) {
    state->dependencies = dependencies_record(job->dependencies, job->temp_dir);
  }
  if (!state) {
    m_run.warnings.push_back("cache not saved: " + state.error());
    job->cache_warnings = std::move(m_run.warnings);
    return job;
  }
  auto compiled = job->changed_files;
  return finish(std::move(*job), *state, "full", std::move(compiled));
}

CompileResult Session::finish(CompileInfo info, const CacheState& state, const std::string& strategy,
                              std::vector<std::string> compiled)
{
  info.incremental = strategy != "full" || options().incremental;
  info.cache_hit = strategy == "cache_hit";
  info.compilation_strategy = strategy;
  info.changed_files = std::move(compiled);
  info.original_changed_files = m_plan.original_changed(); // empty for a cache hit
  info.compiler = m_compiler;
  if (!info.toolchain) {
    // A cache hit: the fingerprint matched, so this toolchain built it.
    if (auto tools = backends::resolve_toolchain(options().toolchain); tools) {
      info.toolchain = *tools;
    }
  }
  info.compilation_time_ms = m_clock.elapsed_ms();
  persist(strategy == "cache_hit" ? nullptr : &state, &info, strategy, info.compilation_time_ms);
  info.cache_warnings = std::move(m_run.warnings);
  return info;
}

void Session::persist(const CacheState* state, const CompileInfo* info, const std::string& strategy,
                      std::int64_t time_ms)
{
  if (!m_lock) {
    return; // persisted already
  }
  auto task = std::make_shared<Persist>(Persist{std::move(*m_lock), std::move(m_dir), m_run.key, m_run.store,
                                                options(), m_run.sandbox, std::nullopt, std::move(m_before),
                                                m_started_ns, strategy, time_ms, m_stats});
  m_lock.reset();
  if (state) {
    task->state = *state;
    task->state->fingerprint = m_fingerprint;
    task->state->compiler = m_compiler;
    task->state->strategy = strategy;
    task->state->compilation_time_ms = time_ms;
    task->state->changed_files = info->changed_files;
  }
  if (!answers_first()) {
    auto warnings = task->run();
    m_run.warnings.insert(m_run.warnings.end(), warnings.begin(), warnings.end());
    return;
  }
  after_answer([task] {
    auto owner = task->dir.path().string();
    for (auto& warning : task->run()) {
      defer_warning(owner, std::move(warning));
    }
  });
}

CompileResult Session::fail(core::Error error)
{
  persist(nullptr, nullptr, "", 0);
  return std::unexpected(std::move(error));
}

} // namespace

CompileResult incremental_compile_sandbox(const std::string& path,
                                          const std::vector<std::string>& changed_files,
                                          const core::CompileOptions& options)
{
  util::Stopwatch clock;
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto explicit_changed = resolve_source_files(*sandbox, changed_files);
  if (!explicit_changed) {
    return std::unexpected(explicit_changed.error());
  }
  // The whole tree is scanned before any cache decision: a cache hit never
  // skips the scan (the options may differ from the compile that filled it).
  if (auto scanned = security_gate_before(*sandbox, {}, options); !scanned) {
    return std::unexpected(scanned.error());
  }
  auto key = engine_key();
  if (!key) {
    return std::unexpected(core::JailSetupFailed{"engine_state", key.error()});
  }
  auto state_root = state_dir();
  auto lock = inc::SandboxLock::acquire(state_root, inc::sandbox_id(*sandbox));
  if (!lock) {
    return std::unexpected(core::JailSetupFailed{"engine_state", lock.error()});
  }
  IncrementalRun run;
  run.sandbox = *sandbox;
  run.options = &options;
  run.key = *key;
  run.store = inc::ObjectStore(state_root / "objects");
  auto dir = inc::CacheDir::open(*sandbox, state_root, true, run.warnings);
  if (!dir) {
    return compile_without_cache(path, options, std::move(run.warnings), dir.error());
  }
  return Session(path, run, std::move(*lock), std::move(*dir), clock).compile(*explicit_changed);
}

namespace {

std::size_t env_size(const char* name, std::size_t fallback)
{
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  auto n = std::strtoull(value, &end, 10);
  return end != nullptr && *end == '\0' ? static_cast<std::size_t>(n) : fallback;
}

} // namespace

void watch_compiled_trees(bool prepare_results)
{
  if (prepare_results) {
    enable_result_spares();
  }
  enable_source_mirrors();
  enable_after_answer();
  inc::TreeWatcher::instance().enable(env_size("SANDBOX_WATCH_MAX_TREES", 64),
                                      env_size("SANDBOX_WATCH_MAX_DIRS", 20'000));
}

void stop_watching_trees()
{
  drain_after_answer(); // the last writes, while the spares can still be prepared
  disable_result_spares();
  disable_source_mirrors();
  inc::TreeWatcher::instance().disable();
}

nlohmann::json watch_support_json()
{
  auto support = inc::probe_watch_support();
  return {{"works", support.works}, {"detail", support.detail}};
}

nlohmann::json watched_trees_json()
{
  auto w = inc::TreeWatcher::instance().status();
  nlohmann::json out = {{"enabled", w.enabled && w.unavailable.empty()},
                        {"trees", w.trees},
                        {"directories", w.watches},
                        {"unwatched_trees", w.fallbacks},
                        {"overflows", w.overflows}};
  if (!w.unavailable.empty()) out["unavailable"] = w.unavailable;
  return out;
}

CompileResult incremental_compile(const std::string& path, const std::vector<std::string>& changed_files,
                                  const core::CompileOptions& options)
{
  auto opts = options;
  opts.incremental = true;
  if (!opts.cache_enabled) {
    return compile_sandbox(path, [&] {
      auto o = opts;
      o.incremental = false;
      return o;
    }());
  }
  return incremental_compile_sandbox(path, changed_files, opts);
}

} // namespace sandbox::compiler
