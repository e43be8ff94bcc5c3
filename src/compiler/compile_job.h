#pragma once
// One compile job: resolve the path -> (scan) -> backend in a runner -> collect
// and validate outputs. compile_sandbox runs one directly or, in incremental
// mode, through incremental_compile.cpp, whose partial rounds
// (incremental_partial.cpp) run jobs with the previous build's BEAMs on the
// code path.

#include "compiler/in_process_compiler.h"
#include "compiler/isolated_compiler.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace sandbox::compiler {

struct JobHooks {
  // BEAMs of modules not being recompiled, placed on the job's code path.
  std::vector<PriorBeam> prior_beams;
};

CompileResult compile_job(const std::string& path, const core::CompileOptions& options,
                          const JobHooks& hooks);

// What an incremental cache keeps of a result's dependencies, and how a cache
// hit gives them back: Hex packages from the package store (by key), path and
// umbrella applications from the restored BEAMs. nullopt when something is
// gone (the store was pruned): the caller compiles in full.
nlohmann::json dependencies_record(const std::vector<DependencyInfo>& dependencies,
                                   const fs::path& temp_dir);
std::optional<std::vector<DependencyInfo>> restore_dependencies(const nlohmann::json& record,
                                                                const fs::path& temp_dir,
                                                                const core::CompileOptions& options);

} // namespace sandbox::compiler
