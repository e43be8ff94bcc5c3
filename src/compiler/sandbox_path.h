#pragma once
// Path safety: the sandbox path is resolved (symlinks, "..") and must be an
// existing directory; every source file must resolve inside it. Components
// are compared, never substrings.

#include "core/error.h"

#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

std::expected<fs::path, core::InvalidSandboxPath> resolve_sandbox(const std::string& path);

// Each entry, relative to the sandbox or absolute, must name an existing
// regular file that resolves inside `sandbox`. Returns paths relative to it.
std::expected<std::vector<fs::path>, core::InvalidSandboxPath>
resolve_source_files(const fs::path& sandbox, const std::vector<std::string>& files);

} // namespace sandbox::compiler
