#pragma once
// The background engine's wire format and where it lives. A client sends one
// request frame; the engine answers with frames: accepted, the command's
// stderr and stdout bytes, its exit status. A frame is a type byte, a 32-bit
// little-endian length and that many bytes; a request's payload is a list of
// length-prefixed strings, so argv, paths and environment values travel as
// bytes, whatever they hold.
//
// Nothing here initialises more than the C library: the client path of every
// forwarded command goes through it.

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::cli::engine {

namespace frame {
constexpr char request = 'R';
constexpr char accepted = 'A'; // the command is about to run
constexpr char out = 'O';      // stdout bytes
constexpr char err = 'E';      // stderr bytes
constexpr char exit = 'X';     // exit status, as decimal text
constexpr char status = 'S';   // the engine's status, a JSON object
constexpr char version = 'V';  // the engine is another version (payload: its identity); it stops
constexpr char refused = 'N';  // the engine cannot serve this request (payload: why)
} // namespace frame

constexpr std::uint32_t kMaxFrameBytes = 256u << 20;

struct Request {
  std::string kind = "run"; // run, status or stop
  std::string identity;     // the client's identity(); another is told to stop
  std::string cwd;          // relative paths are resolved against it
  std::uint32_t umask = 022;
  bool out_terminal = false; // the client's stdout is a terminal
  std::vector<std::string> argv;
  std::vector<std::string> environment; // environment_contract() of the client
  std::optional<std::string> input;     // stdin, for the commands that read it
};

std::string encode(const Request& request);
std::optional<Request> decode(std::string_view payload);

bool write_all(int fd, std::string_view bytes);
// A frame on a socket (never SIGPIPE).
bool send_frame(int fd, char type, std::string_view payload);
// One frame; false at end of file, on an error or past `max_bytes`.
bool read_frame(int fd, char& type, std::string& payload, std::uint32_t max_bytes = kMaxFrameBytes);

// The version and the identity of the running binary (device, inode, size,
// modification time): an engine built from other code is another version.
std::string identity();

// The variables of `environ` the engine's results depend on, sorted as
// NAME=VALUE: every SANDBOX_* (but those choosing whether and how long the
// background engine runs), PATH, HOME, TMPDIR and XDG_STATE_HOME. The engine
// is started with exactly these and serves only requests that send the same.
std::vector<std::string> environment_contract(char** environ_list);

// Variables that choose where a command runs, not what it does.
constexpr const char* kNoDaemonVariable = "SANDBOX_NO_DAEMON";
constexpr const char* kIdleExitVariable = "SANDBOX_DAEMON_IDLE_EXIT";
constexpr long kDefaultIdleExitSeconds = 15 * 60;

struct Location {
  std::string dir;    // 0700, the user's own
  std::string socket; // engine-<hash of the environment contract>.sock
  std::string lock;   // taken while an engine is started
  std::string log;    // the engine's stderr
};

// $XDG_RUNTIME_DIR/sandbox, else <state dir>/run; created 0700 when missing,
// refused when it is not a directory of this user that only this user can use.
std::expected<Location, std::string> locate(const std::vector<std::string>& contract);

} // namespace sandbox::cli::engine
