#pragma once
// Results prepared ahead. Every incremental compile hands back a fresh temp
// dir with a copy of every BEAM, a cache hit too: for a project of 400
// modules that is 400 file creations, most of a no-change compile. The
// background engine prepares that dir for a watched sandbox right after each
// compile, while the user reads the answer, so that the next cache hit of the
// same state hands it out at once. A spare is an ordinary marked job temp dir
// that no one has seen; it is watched (tree_watch.h) while it waits, and one
// that was touched is discarded. Spares are removed when the engine exits;
// those of an engine that was killed are listed in the state directory
// (`spares/<pid>.list`, locked while their engine lives) and removed by the
// next engine.

#include "compiler/incremental_state.h"
#include "compiler/isolated_compiler.h"

#include <filesystem>
#include <optional>
#include <string>

namespace sandbox::compiler {

// A cache hit's result: the state's BEAMs and .app in a fresh temp dir, and
// its dependencies restored beside them. nullopt when they cannot be.
std::optional<CompileInfo> hit_result(const CacheState& state, const incremental::ObjectStore& store,
                                      const core::CompileOptions& options);

// Turns spares on for this process (the background engine) and removes the
// spares of engines that are gone.
void enable_result_spares();
// Removes every spare and stops preparing them.
void disable_result_spares();

// Prepares, in the background, the result of a cache hit of `state` for the
// cache `owner` (one cache directory) under the temp root `parent`.
void prepare_spare(const std::string& owner, const std::shared_ptr<const CacheState>& state,
                   const incremental::ObjectStore& store,
                   const core::CompileOptions& options);

// The spare prepared for `owner` at `generation` under `parent`, untouched
// since; waits for one being prepared. nullopt: none, and a stale one is removed.
std::optional<CompileInfo> take_spare(const std::string& owner, const std::string& generation,
                                      const std::filesystem::path& parent);

// The spare prepared for `from` turned into the result of `to` by writing
// only the modules that differ (an incremental compile after an edit):
// nullopt when there is none, or for a project with dependencies.
std::optional<CompileInfo> take_spare_updated(const std::string& owner, const CacheState& from, const CacheState& to,
                                              const incremental::ObjectStore& store,
                                              const core::CompileOptions& options);

} // namespace sandbox::compiler
