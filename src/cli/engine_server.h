#pragma once
// `sandbox daemon run`: the per-user background engine. It listens on a 0600
// socket (bound under a temporary name and renamed into place, so a stale or
// replaced socket never blocks it), serves only its own user, and runs each
// client's command with the very handlers of the command line, on a thread
// with the client's working directory and umask (its own file-system context,
// unshare(CLONE_FS)), its stdin bytes and output buffers, a hang-up of the
// client cancelling the command's jobs. It exits when idle for the idle exit,
// on SIGTERM or SIGINT, when told to stop, when a client of another version
// reaches it, or when its socket is removed or replaced.

#include <ostream>
#include <string>

namespace sandbox::cli::engine {

struct ServerSettings {
  std::string socket;
  long idle_exit_seconds = 15 * 60; // 0: never
  std::size_t prestart = 1;         // warm in_process workers kept ready
};

// Returns the exit status once the engine stops.
int run_server(const ServerSettings& settings, std::ostream& log);

} // namespace sandbox::cli::engine
