#pragma once
// The client side of the background engine: connecting (the socket and the
// peer must be this user's), starting one race-free (a lock beside the socket,
// a detached `sandbox daemon run`), and one exchange of a request.

#include "cli/engine_wire.h"
#include "util/fd.h"

#include <expected>
#include <optional>
#include <string>

namespace sandbox::cli::engine {

// A connection to the engine at `where`, or why there is none (no socket,
// refused, not this user's).
std::expected<util::Fd, std::string> connect_engine(const Location& where);

// Connects, starting an engine first when none answers: under the lock, a
// stale socket is removed and `sandbox daemon run` started detached (its own
// session, stdio to the log), then waited for (10 s at most).
std::expected<util::Fd, std::string> connect_or_start(const Location& where,
                                                      long idle_exit_seconds);

// What an engine answered to one request.
struct Answer {
  bool accepted = false;                    // the command started there
  std::optional<int> exit_status;           // it finished
  std::string out, err, status;             // its stdout, stderr; a status object
  std::optional<std::string> other_version; // the engine is another version and stops
  std::optional<std::string> refused;       // why it cannot serve the request
};

Answer exchange(int fd, const Request& request);

// The idle exit in seconds: $SANDBOX_DAEMON_IDLE_EXIT, else 15 minutes.
long idle_exit_from_environment();

// A request of `kind` carrying this process's identity and environment.
Request make_request(const std::string& kind);

} // namespace sandbox::cli::engine
