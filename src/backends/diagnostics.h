#pragma once
// Turns what the Elixir and Erlang compilers print into structured diagnostics.
//
// The input is untrusted: compiling runs the sandbox's code, which can print
// anything, so these parsers accept any bytes, never throw, run in time linear
// in the input, and return at most kMaxDiagnostics entries. A diagnostic the
// parser cannot place gets file "" and line 0 rather than being dropped.

#include "core/diagnostic.h"

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::backends {

// Where the sandbox tree lived, as seen by the compiler, so printed paths can be
// mapped back to sandbox-relative ones. Matching is lexical (after collapsing
// "." and ".."), never by string prefix and never through the file system: the
// paths were printed inside a jail whose view the host may not share.
struct PathContext {
  std::filesystem::path sandbox_root; // absolute, resolved path of the sandbox on the host
  // Other absolute paths under which the compiler saw the same tree, such as
  // the jail's mount point (/sandbox).
  std::vector<std::filesystem::path> aliases;
};

inline constexpr std::size_t kMaxDiagnostics = 1000;
// Longer messages are cut: one diagnostic must not carry megabytes of output.
inline constexpr std::size_t kMaxMessageBytes = 8192;

// Output of elixirc, mix compile and elixir (Elixir 1.14 to 1.18 formats):
//  - "warning: msg" / "error: msg" blocks, message possibly several lines, followed by
//    "  file:line[:col][: context]" location lines (Elixir <= 1.15) or a boxed
//    snippet ending in "└─ file:line[:col][: context]" (Elixir >= 1.16). A warning
//    listing several locations gives one diagnostic per location, all with the
//    same message.
//  - "** (CompileError) file:line: msg" and the other compiler exceptions
//    (SyntaxError, TokenMissingError, MismatchedDelimiterError): an error at that
//    location, the message without the exception name. The 1.16 form
//    "** (SyntaxError) invalid syntax found on file:l:c:" followed by a boxed
//    "error:" gives one diagnostic, from the box.
//  - "** (AnyError) msg" without a location (a raise while compiling): an error
//    whose message keeps the exception name, placed at the first stack frame
//    that is not in a library ("(elixir 1.14.0) ..."), preferring a frame in the
//    file named by mix's "== Compilation error in file F ==" header, else at F
//    line 0.
//  - "** (CompileError) F: cannot compile module M (errors have been logged)"
//    is dropped when an error for F was already reported (it only summarises).
//  - "** (Mix) msg" and "Compilation failed due to warnings ...": an error with
//    file "" and line 0.
//  - erlc lines (mix compiles src/*.erl), see parse_erlc_output.
// File paths inside the sandbox (under sandbox_root or an alias, or relative,
// which the compiler prints relative to its working directory, the sandbox
// root) come out relative to the sandbox; paths elsewhere come out absolute;
// "nofile" stays "nofile". A path containing whitespace is not recognised as
// one: prose before a location ("found on lib/a.ex:1:2") would pass for a path.
std::vector<core::Diagnostic> parse_elixir_output(std::string_view output,
                                                  const PathContext& paths);

// Output of erlc (OTP 24 to 27): "file:line:col: msg", "file:line: msg" and
// "file: msg". A message starting "Warning: " is a warning (the prefix is
// removed), anything else an error. Source snippet lines ("%    3| ...") and
// lines naming no file ("compile: warnings being treated as errors") are skipped.
std::vector<core::Diagnostic> parse_erlc_output(std::string_view output, const PathContext& paths);

// Maps a path as the compiler printed it to the form diagnostics carry
// (sandbox-relative inside the sandbox, absolute outside). Exposed for the
// backends, which report other paths (BEAM outputs) the same way.
std::string sandbox_relative_path(std::string_view printed, const PathContext& paths);

// Removes ANSI escape sequences (CSI "ESC [ ... final" and two-byte "ESC x").
std::string strip_ansi(std::string_view text);

} // namespace sandbox::backends
