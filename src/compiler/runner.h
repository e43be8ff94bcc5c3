#pragma once
// Chooses the process runner for a compile from the isolation option.

#include "core/error.h"
#include "core/options.h"
#include "jail/process.h"

#include <expected>
#include <memory>

namespace sandbox::compiler {

std::expected<std::unique_ptr<jail::ProcessRunner>, core::Error>
make_runner(core::IsolationMode mode);

} // namespace sandbox::compiler
