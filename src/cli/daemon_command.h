#pragma once
// `sandbox daemon status|stop|start|run`.

#include <CLI/CLI.hpp>
#include <functional>

namespace sandbox::cli {

struct Io;

void register_daemon_commands(CLI::App& app, std::function<int()>& selected, const Io& io);

} // namespace sandbox::cli
