#pragma once
// The engine's side of the worker port protocol: requests and replies in
// Erlang external term format (encoded and decoded with erl_interface's ei),
// carried in {packet,4} frames (a 4-byte big-endian length, then the term).
// priv/sandbox_worker.erl documents the terms. Everything a worker sends is
// untrusted: frames are capped before they are read, and every decode checks
// its bounds (ei's decoders take no buffer length).

#include "core/diagnostic.h"
#include "core/references.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::worker {

inline constexpr long kProtocolVersion = 1;
// No reply comes near this: BEAMs travel as files, not in frames.
inline constexpr std::size_t kMaxFrameBytes = 16u << 20;

// --- terms -----------------------------------------------------------------

struct Hello {
  long version = 0;
  std::string otp_release;
  std::string elixir_version;
};

struct CompileRequest {
  std::string source_dir;          // as the worker sees it
  std::string out_dir;             // as the worker sees it
  std::vector<std::string> files;  // relative to source_dir
  bool debug_info = true;
  bool parallel = true;
  // Directories (as the worker sees them) put first on the code path for this
  // request only: the previous BEAMs of a partial compile.
  std::vector<std::string> code_paths;
};

struct CompiledModule {
  std::string name;      // as inspect prints it: "MyApp.Foo"
  std::string beam_path; // as the worker sees it
};

struct CompileReply {
  enum class Status { ok, error, failed };
  Status status = Status::failed;
  std::vector<CompiledModule> modules;
  std::vector<core::Diagnostic> errors;
  std::vector<core::Diagnostic> warnings;
  std::vector<core::FileReferences> references;
  std::string failure; // Status::failed: what went wrong inside the worker
};

// The hygiene check between two jobs (priv/sandbox_worker.erl, check/2):
// clean, or the first difference from the worker's baseline.
struct CheckReply {
  bool clean = false;
  std::string difference; // not clean: what differs ("processes differ from the baseline")
};

std::string encode_hello();
std::string encode_compile(const CompileRequest& request);
std::string encode_loaded_modules();
std::string encode_check(long atom_budget, long memory_budget);

// A payload that is not the expected term is an error naming what was wrong.
std::expected<Hello, std::string> decode_hello(std::string_view payload);
std::expected<CompileReply, std::string> decode_compile_reply(std::string_view payload);
std::expected<std::vector<std::string>, std::string> decode_loaded_modules(std::string_view payload);
std::expected<CheckReply, std::string> decode_check_reply(std::string_view payload);

// --- frames ----------------------------------------------------------------

enum class FrameError {
  closed,    // end of file before a frame began: the worker is gone
  truncated, // end of file inside a frame
  too_large, // the header announces more than the maximum
  timeout,   // the deadline passed
  io,        // a read or write failed
};

std::string_view to_string(FrameError error);

struct FrameFailure {
  FrameError kind;
  std::string detail;
};

using Deadline = std::chrono::steady_clock::time_point;

// The bytes of one frame: the 4-byte length, then the payload.
std::string make_frame(std::string_view payload);

// Writes one frame to `fd` (any blocking mode) before `deadline`.
std::expected<void, FrameFailure> write_frame(int fd, std::string_view payload, Deadline deadline);

// Reads one frame from `fd` before `deadline`; a header announcing more than
// `max_bytes` fails without reading the payload.
std::expected<std::string, FrameFailure> read_frame(int fd, Deadline deadline,
                                                    std::size_t max_bytes = kMaxFrameBytes);

} // namespace sandbox::worker
