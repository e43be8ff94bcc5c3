#pragma once
// One compile job: resolve the path -> (scan) -> backend in a runner -> collect
// and validate outputs. compile_sandbox runs one directly or, in incremental
// mode, through incremental_compile.cpp, whose partial rounds
// (incremental_partial.cpp) run jobs with the previous build's BEAMs on the
// code path.

#include "compiler/in_process_compiler.h"
#include "compiler/isolated_compiler.h"

#include <string>
#include <vector>

namespace sandbox::compiler {

struct JobHooks {
  // BEAMs of modules not being recompiled, placed on the job's code path.
  std::vector<PriorBeam> prior_beams;
};

CompileResult compile_job(const std::string& path, const core::CompileOptions& options,
                          const JobHooks& hooks);

} // namespace sandbox::compiler
