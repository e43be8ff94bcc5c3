#pragma once
// The partial compile: the stale files compile in rounds, each one job with
// the previous BEAMs of every other module on its code path, and the next
// round is whatever depends on what the last one really changed (judged on
// the compiled code); and the state of a full compile, built from its outputs
// the same way.

#include "compiler/incremental_state.h"
#include "core/diagnostic.h"
#include "core/options.h"
#include "incremental/store.h"
#include "incremental/tree_stamps.h"
#include "jail/process.h"

#include <expected>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace sandbox::compiler {

// What one incremental compile works with, under the sandbox's lock.
struct IncrementalRun {
  std::filesystem::path sandbox; // resolved
  const core::CompileOptions* options = nullptr;
  std::string key; // the engine key, for the cache files' HMAC
  incremental::ObjectStore store{std::filesystem::path()};
  std::vector<std::string> warnings; // become the result's cache_warnings
};

struct PartialOutcome {
  CacheState state;
  std::vector<std::string> compiled; // every file compiled, in order
  std::vector<core::Diagnostic> warnings;
  std::string output;
  jail::ResourceUsage usage;   // of the last round's job
  jail::Isolation isolation;   // of the last round's job
  nlohmann::json worker;       // of the last round's job (in_process), else null
};

// Runs the partial rounds from `batch`; the modules of `forced` files count
// as changed code. An unexpected result (a module no compiled file accounts
// for, one defined twice, too many rounds) is a reason to fall back to a full
// compile, returned as a string; a job that fails is the compile's error.
std::expected<std::expected<PartialOutcome, std::string>, core::Error>
run_partial(IncrementalRun& run, const CacheState& prev, const incremental::TreeStamps& now,
            const incremental::TreeDiff& diff, std::set<std::string> batch,
            const std::set<std::string>& forced);

// The state of a full compile, built from its outputs (its BEAMs and .app go
// into the store).
std::expected<CacheState, std::string> state_from_full(IncrementalRun& run, const CompileInfo& info,
                                                       const incremental::TreeStamps& stamps);

} // namespace sandbox::compiler
