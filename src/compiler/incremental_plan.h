#pragma once
// The plan of an incremental compile: compare the tree with the stored state
// and pick cache_hit, incremental or full, with the reason when full, and the
// files the first partial round compiles.

#include "compiler/incremental_state.h"
#include "core/options.h"
#include "incremental/store.h"
#include "incremental/tree_stamps.h"

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sandbox::compiler {

struct Plan {
  std::string strategy = "full"; // cache_hit, incremental, full
  std::string reason;            // why full, when a cache was there to use
  incremental::TreeDiff diff;    // against the stored stamps (empty when full)
  std::set<std::string> sources; // the compile's source files, relative

  // The diff as the result's original_changed_files: every changed, added
  // and deleted input, sorted.
  [[nodiscard]] std::vector<std::string> original_changed() const;
};

// Toolchain identity, compile options and env: any change means a full compile.
std::string fingerprint(const core::CompileOptions& options);

// The source files a compile of `stamps` takes: options.source_files when
// given, else lib/**/*.ex.
std::vector<std::string> source_files_of(const core::CompileOptions& options,
                                         const incremental::TreeStamps& stamps);

// Decides the strategy for the tree `now` against `prev` (none: no usable
// cache). `explicit_changed` (relative paths) count as changed whatever their
// hashes say.
Plan plan_compile(const CacheState* prev, const incremental::TreeStamps& now,
                  const std::vector<std::filesystem::path>& explicit_changed,
                  const core::CompileOptions& options, const std::string& fingerprint,
                  const incremental::ObjectStore& store);

struct FirstBatch {
  std::set<std::string> files;  // changed and added sources, and the readers below
  std::set<std::string> forced; // sources that read a changed non-source input
};

// The first round of a partial compile: changed and added sources, plus
// sources that read a changed or deleted input that is not a source (their
// modules count as changed code).
FirstBatch first_batch(const Plan& plan, const incremental::DependencyGraph& prev_graph);

} // namespace sandbox::compiler
