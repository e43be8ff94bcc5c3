// What `sandbox cache stats` and `sandbox cache clear` read and do, and the
// counting behind them.

#include "compiler/cache_stats.h"

#include "compiler/engine_state.h"
#include "compiler/incremental_compile.h"
#include "compiler/sandbox_path.h"
#include "util/fs.h"

#include <fmt/format.h>

namespace sandbox::compiler {

namespace inc = sandbox::incremental;
using nlohmann::json;

CacheStats load_stats(const inc::CacheDir& dir, const std::string& key,
                      std::vector<std::string>& warnings)
{
  CacheStats st;
  auto doc = dir.read(inc::kCacheStats, key);
  if (!doc) {
    if (doc.error() != "missing") {
      warnings.push_back(fmt::format("{}: {}: statistics restarted", inc::kCacheStats, doc.error()));
    }
    return st;
  }
  try {
    st.total = doc->at("total_compilations").get<std::int64_t>();
    st.incremental = doc->at("incremental_compilations").get<std::int64_t>();
    st.hits = doc->at("cache_hits").get<std::int64_t>();
    st.full = doc->at("full_compilations").get<std::int64_t>();
    st.failed = doc->at("failed_compilations").get<std::int64_t>();
    st.total_time_ms = doc->at("total_compilation_time").get<std::int64_t>();
  } catch (const json::exception&) {
    warnings.push_back("cache_stats.json is malformed: statistics restarted");
    st = {};
  }
  return st;
}

json stats_json(const CacheStats& st)
{
  auto ratio = [&](std::int64_t n) {
    return st.total == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(st.total);
  };
  return {{"total_compilations", st.total},
          {"incremental_compilations", st.incremental},
          {"cache_hits", st.hits},
          {"full_compilations", st.full},
          {"failed_compilations", st.failed},
          {"total_compilation_time", st.total_time_ms},
          {"cache_hit_rate", ratio(st.hits)},
          {"incremental_rate", ratio(st.incremental)},
          {"average_compilation_time", st.total == 0 ? 0 : st.total_time_ms / st.total}};
}

void record_stats(const inc::CacheDir& dir, const std::string& key, CacheStats st,
                  const std::string& strategy, std::int64_t time_ms, bool failed,
                  std::vector<std::string>& warnings)
{
  if (failed) {
    ++st.failed;
  } else {
    ++st.total;
    st.total_time_ms += time_ms;
    if (strategy == "cache_hit") {
      ++st.hits;
      ++st.incremental;
    } else if (strategy == "incremental") {
      ++st.incremental;
    } else {
      ++st.full;
    }
  }
  if (auto written = dir.write(inc::kCacheStats, stats_json(st), key); !written) {
    warnings.push_back(fmt::format("{}: {}", inc::kCacheStats, written.error()));
  }
}

std::expected<nlohmann::json, core::Error> get_cache_statistics(const std::string& path)
{
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto key = engine_key();
  if (!key) {
    return std::unexpected(core::JailSetupFailed{"engine_state", key.error()});
  }
  // The lock waits for the writes of a compile that has answered already
  // (after_answer.h), so the statistics count it.
  auto root = state_dir();
  auto lock = inc::SandboxLock::acquire(root, inc::sandbox_id(*sandbox));
  if (!lock) {
    return std::unexpected(core::JailSetupFailed{"engine_state", lock.error()});
  }
  std::vector<std::string> warnings;
  auto dir = inc::CacheDir::open(*sandbox, root, false, warnings);
  CacheStats st;
  if (dir) {
    st = load_stats(*dir, *key, warnings);
  }
  auto out = stats_json(st);
  out["cache_warnings"] = warnings;
  return out;
}

std::expected<void, core::Error> clear_compilation_cache(const std::string& path)
{
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto root = state_dir();
  auto lock = inc::SandboxLock::acquire(root, inc::sandbox_id(*sandbox));
  if (!lock) {
    return std::unexpected(core::JailSetupFailed{"engine_state", lock.error()});
  }
  std::vector<std::string> warnings;
  if (auto dir = inc::CacheDir::open(*sandbox, root, false, warnings)) {
    dir->clear();
  }
  // Also the engine-side copy, whichever location was in use.
  std::error_code ec;
  auto engine_copy = root / "caches" / inc::sandbox_id(*sandbox);
  if (fs::is_directory(fs::symlink_status(engine_copy, ec))) {
    (void)util::remove_tree(engine_copy);
  }
  return {};
}

} // namespace sandbox::compiler
