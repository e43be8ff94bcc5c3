#pragma once
// `sandbox serve`: a long-running engine on a Unix socket. One thread per
// connection reads newline-delimited JSON requests (service/protocol.h);
// compile-type operations go through a JobQueue (at most max_jobs running, at
// most max_queue waiting, busy beyond). A client that disconnects cancels its
// job; SIGTERM or SIGINT stops accepting, removes the socket, lets running
// jobs finish for shutdown_grace_ms, cancels what is left, and returns.

#include "compiler/in_process_compiler.h"
#include "service/protocol.h"

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

namespace sandbox::service {

struct ServerSettings {
  std::filesystem::path socket_path;
  mode_t socket_mode = 0600;
  std::size_t max_jobs = 2;
  std::size_t max_queue = 16;
  std::size_t max_request_bytes = kDefaultMaxRequestBytes;
  std::size_t max_connections = 64;
  int shutdown_grace_ms = 10'000;
  std::optional<compiler::WorkerPoolSettings> worker_pool; // configured at start when set
};

// Runs until SIGTERM or SIGINT. Returns the process exit status: 0 after a
// clean stop, 1 when the socket could not be set up (the reason is logged).
int serve(const ServerSettings& settings, std::ostream& log);

} // namespace sandbox::service
