#pragma once
// `sandbox compile A B C ...`: several sandboxes compiled concurrently. On a
// terminal a status line shows done/total, the sandboxes being compiled and
// the elapsed time; otherwise one plain line per start and per result. Then a
// summary, as the guide's batch example. With --json, one object with every
// sandbox's result.

#include "core/options.h"

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace sandbox::cli {

struct BatchSettings {
  std::size_t jobs = 2;
  bool json = false;
  bool terminal = false; // progress as a rewritten status line
};

// Returns the exit status: 0 when every sandbox compiled, 1 otherwise.
int run_batch(const std::vector<std::string>& paths, const core::CompileOptions& options,
              const BatchSettings& settings, std::ostream& out);

} // namespace sandbox::cli
