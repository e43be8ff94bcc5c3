#pragma once
// The cache's statistics (cache_stats.json): one count per compile, kept apart
// from the state files so that a failed compile is counted without storing
// anything a later compile could take for a hit.

#include "incremental/store.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sandbox::compiler {

struct CacheStats {
  std::int64_t total = 0;
  std::int64_t incremental = 0; // cache hits count here too
  std::int64_t hits = 0;
  std::int64_t full = 0;
  std::int64_t failed = 0; // not in `total`
  std::int64_t total_time_ms = 0;
};

// The recorded counts; zero (restarted, said in `warnings`) when the file is
// unusable.
CacheStats load_stats(const incremental::CacheDir& dir, const std::string& key,
                      std::vector<std::string>& warnings);

// The specification's statistics object, rates and average included.
nlohmann::json stats_json(const CacheStats& stats);

// Counts one compile of `strategy` (cache_hit, incremental, full) taking
// `time_ms`, or with `failed` one failed compile, and writes the file; a
// failed write goes to `warnings`, the compile's result stands.
void record_stats(const incremental::CacheDir& dir, const std::string& key, CacheStats stats,
                  const std::string& strategy, std::int64_t time_ms, bool failed,
                  std::vector<std::string>& warnings);

} // namespace sandbox::compiler
