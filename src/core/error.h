#pragma once
// The specification's error kinds (compile_error in the guide), plus the few
// this engine adds. Each kind is its own struct so its fields are typed; Error
// is the closed set of them. JSON field names follow DESIGN.md.

#include "core/diagnostic.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sandbox::core {

struct CompilationFailed {
  int exit_code = 1;
  std::string output;
  std::vector<Diagnostic> diagnostics; // errors and warnings parsed from output
};

struct CompilationTimeout {
  std::int64_t timeout_ms = 0;
};

struct CompilerCrash {
  std::string kind;        // "signal", "exit", "io", ...
  std::string error;       // what happened, e.g. "killed by SIGSEGV"
  nlohmann::json context = nlohmann::json::object();
};

struct InvalidSandboxPath {
  std::string path;
  std::string reason;
};

struct BeamValidationFailed {
  std::string file;
  std::string reason;
};

enum class LimitType { memory_limit, cpu_limit, max_processes };
std::string_view to_string(LimitType type);

struct ResourceLimitExceeded {
  LimitType limit_type = LimitType::memory_limit;
  double current = 0;
  double limit = 0;
  // What the job was compiling when it hit the limit (the compiler and the
  // last progress line it printed), and which option raises the limit: a
  // verdict a user can act on. Empty when unknown.
  std::string compiling;
  std::string hint;
};

struct ResourceMonitorFailed {
  std::string reason;
};

struct SecurityThreatsDetected {
  nlohmann::json threats = nlohmann::json::array();
};

struct SecurityScanFailed {
  std::string reason;
};

// Engine additions (documented in README "Errors").

// The isolation could not be set up; never the user's compile error.
struct JailSetupFailed {
  std::string stage;
  std::string reason;
};

// The project declares dependencies that cannot be fetched (no package
// registry is reachable from a compile).
struct DependenciesUnavailable {
  std::vector<std::string> dependencies;
  std::string reason;
};

// A package did not match what mix.lock pins (checksums, name, version) or
// its archive is unsafe to unpack (absolute paths, `..`, links, devices,
// sizes past the caps). Nothing of it reaches a jail.
struct DependencyVerificationFailed {
  std::string dependency;
  std::string version;
  std::string reason;
  std::string expected;
  std::string actual;
};

// A caller passed an option the engine does not know, or a bad value.
struct InvalidOption {
  std::string option;
  std::string reason;
};

// A compile produced no module (compile_string of code without defmodule).
struct NoBytecodeGenerated {
  std::string reason;
};

// The output of a job exceeded the configured cap.
struct OutputLimitExceeded {
  std::uint64_t limit_bytes = 0;
};

// A caller of a shared service named a path it may not use that way
// (operation: read, write, cleanup). Carries no byte of the file's content.
struct PermissionDenied {
  std::string path;
  std::string operation;
};

using Error = std::variant<CompilationFailed, CompilationTimeout, CompilerCrash,
                           InvalidSandboxPath, BeamValidationFailed, ResourceLimitExceeded,
                           ResourceMonitorFailed, SecurityThreatsDetected, SecurityScanFailed,
                           JailSetupFailed, DependenciesUnavailable, InvalidOption,
                           NoBytecodeGenerated, OutputLimitExceeded, PermissionDenied,
                           DependencyVerificationFailed>;

// The kind as the specification spells it, e.g. "compilation_failed".
std::string_view error_type(const Error& error);

// {"type": "<kind>", <fields>...}
nlohmann::json to_json(const Error& error);

// One line for people, e.g. "compilation failed: exit code 1".
std::string describe(const Error& error);

} // namespace sandbox::core
