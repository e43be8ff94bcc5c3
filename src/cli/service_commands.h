#pragma once
// `sandbox serve` (the engine on a Unix socket) and `sandbox request` (one
// protocol request read from stdin, answered by the same dispatcher).

#include <CLI/CLI.hpp>

#include <functional>

namespace sandbox::cli {

void register_service_commands(CLI::App& app, std::function<int()>& selected);

} // namespace sandbox::cli
