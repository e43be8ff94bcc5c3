#pragma once
// Incremental compilation and the compile cache (the specification's
// "Incremental Compilation and Caching"). See docs/incremental.md.

#include "compiler/isolated_compiler.h"

#include <nlohmann/json.hpp>

#include <expected>
#include <string>
#include <vector>

namespace sandbox::compiler {

// compile_sandbox with incremental: true. `changed_files` (relative to the
// sandbox) are added to what change detection finds; detection always runs.
CompileResult incremental_compile_sandbox(const std::string& path,
                                          const std::vector<std::string>& changed_files,
                                          const core::CompileOptions& options);

// The specification's incremental_compile(path, changed_files, opts):
// incremental regardless of options.incremental.
CompileResult incremental_compile(const std::string& path,
                                  const std::vector<std::string>& changed_files = {},
                                  const core::CompileOptions& options = {});

// {total_compilations, incremental_compilations, cache_hits, full_compilations,
//  failed_compilations, cache_hit_rate, incremental_rate, average_compilation_time}
std::expected<nlohmann::json, core::Error> get_cache_statistics(const std::string& path);

// A long-running engine watches the trees it compiles and scans with inotify,
// so that a compile with nothing changed looks only at what changed
// (incremental/tree_watch.h). SANDBOX_WATCH_MAX_TREES and
// SANDBOX_WATCH_MAX_DIRS (directories per tree) bound it. With
// `prepare_results` (the per-user background engine, whose caller owns what
// it creates) the result of the next cache hit of a watched sandbox is
// prepared after each compile (result_spares.h).
void watch_compiled_trees(bool prepare_results = false);
// Removes the prepared results and drops the watches (the engine exits).
void stop_watching_trees();
// {works, detail}: whether trees can be watched here (sandbox doctor).
nlohmann::json watch_support_json();
// {enabled, trees, directories, unwatched_trees, overflows[, unavailable]}
nlohmann::json watched_trees_json();

// Removes the sandbox's cache files (in .sandbox_cache or the engine's copy).
std::expected<void, core::Error> clear_compilation_cache(const std::string& path);

} // namespace sandbox::compiler
