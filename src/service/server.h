#pragma once
// `sandbox serve`: a long-running engine on a Unix socket. One thread per
// connection reads newline-delimited JSON requests (service/protocol.h);
// compile-type operations go through a JobQueue (at most max_jobs running, at
// most max_queue waiting, busy beyond; at most caller_share of them for one
// caller). Each connection's peer credentials say who is asking; every request
// runs with that caller's rights (service/caller_scope.h). A client that disconnects cancels its
// job; SIGTERM or SIGINT stops accepting, removes the socket, lets running
// jobs finish for shutdown_grace_ms, cancels what is left, and returns.

#include "compiler/in_process_compiler.h"
#include "fleet/fleet.h"
#include "service/protocol.h"

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

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
  // Who may connect besides root and the engine's own user: when both lists
  // are empty, anyone the socket's mode lets in; else a caller whose uid is in
  // allow_users or whose primary or supplementary group is in allow_groups.
  std::vector<uid_t> allow_users;
  std::vector<gid_t> allow_groups;
  // Jobs (running and queued) one caller may hold at once; 0 means half of
  // max_jobs + max_queue, at least 1. Beyond it that caller alone gets busy.
  std::size_t caller_share = 0;
  // A node of a fleet (docs/fleet.md): compiles and compile_string go to the
  // fleet's shared cache and job queue; cluster->jobs of this node's slots
  // take the fleet's jobs (0: a gateway, whose one local slot serves only
  // while the store cannot be reached).
  std::optional<fleet::FleetSettings> cluster;
};

// The share settings.caller_share stands for.
std::size_t effective_caller_share(const ServerSettings& settings);

// Whether `caller` may use the service (root and the engine's user always may).
bool caller_allowed(const ServerSettings& settings, const Caller& caller);

// Listens on settings.socket_path, or on the socket systemd passes (socket
// activation: LISTEN_PID is this process, LISTEN_FDS=1, fd 3), whose file the
// socket unit owns and which is then left in place at stop.
// Runs until SIGTERM or SIGINT. Returns the process exit status: 0 after a
// clean stop, 1 when the socket could not be set up (the reason is logged).
int serve(const ServerSettings& settings, std::ostream& log);

} // namespace sandbox::service
