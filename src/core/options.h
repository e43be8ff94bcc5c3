#pragma once
// Compile options: the specification's tables (core, incremental, resource
// limit and security options) plus the engine's own, parsed from a JSON object
// whose keys are the specification's option names. The command line, the
// service protocol and the library all go through parse_compile_options, so an
// option is validated in exactly one place.

#include "core/error.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::core {

enum class Backend { mix, elixirc, erlc, in_process };
std::string_view to_string(Backend backend);

// How a job is contained. `jail` is the default and refuses to run where the
// kernel lacks what it needs; `process_group` is the named weaker mode a
// caller must opt into.
enum class IsolationMode { jail, process_group };
std::string_view to_string(IsolationMode mode);

// Which files' findings can stop a compile (docs/security.md, "Where code
// runs decides what is a threat"). `compiled`: only code that becomes a BEAM
// a host may load; code that runs only inside the jail (mix.exs, config,
// scripts, tests) or only under Mix (Mix tasks) is reported, not judged.
// `all`: every file read is judged as if a host ran it.
enum class ScanScope { compiled, all };
std::string_view to_string(ScanScope scope);

// Whether a warm worker may serve another job after this one (in_process and
// compile_string; docs/security.md, "Confinement"). `confined`: when the
// submission is confined and the worker passes the hygiene check after it;
// `never`: the job gets a worker that served no job and it is destroyed after.
enum class WorkerReuse { confined, never };
std::string_view to_string(WorkerReuse reuse);

// The specification's default restricted modules.
std::vector<std::string> default_restricted_modules();

struct CompileOptions {
  // Core options
  std::int64_t timeout_ms = 30'000;
  std::uint64_t memory_limit = 256ull << 20;
  std::optional<std::filesystem::path> temp_dir;
  bool validate_beams = true;
  Backend compiler = Backend::mix;
  std::map<std::string, std::string> env;
  std::vector<std::string> source_files;
  // Incremental compilation options
  bool incremental = false;
  bool force_recompile = false;
  bool cache_enabled = true;
  bool skip_cache = false;
  bool dependency_analysis = true;
  // Resource limit options
  double cpu_limit = 80.0;
  int max_processes = 100;
  // Security options
  bool security_scan = true;
  std::vector<std::string> restricted_modules = default_restricted_modules();
  std::vector<std::string> allowed_operations;
  ScanScope scan_scope = ScanScope::compiled;
  // Engine options
  std::uint64_t output_limit = 1ull << 20;
  IsolationMode isolation = IsolationMode::jail;
  // Where Hex packages come from: an absolute directory laid out as a Hex
  // repository (tarballs/NAME-VERSION.tar) or an http(s) URL of one. Empty:
  // $SANDBOX_PACKAGE_MIRROR, else none (docs/dependencies.md).
  std::string package_mirror;
  // The Elixir toolchain: an absolute installation prefix or a name registered
  // in toolchains.conf; empty: the system's (docs/toolchains.md).
  std::string toolchain;
  WorkerReuse worker_reuse = WorkerReuse::confined;

  // Which options were given explicitly (by their specification names).
  std::vector<std::string> given;
};

// Every option name parse_compile_options accepts.
const std::vector<std::string_view>& known_option_names();

// Parses {"timeout": 5000, "compiler": "elixirc", ...}. An unknown key or a
// value of the wrong type or out of range is an InvalidOption naming it.
std::expected<CompileOptions, InvalidOption> parse_compile_options(const nlohmann::json& object);

// Parses "268435456", "256M", "1G", "512K", "100MB", "2GiB".
std::expected<std::uint64_t, std::string> parse_byte_size(std::string_view text);

// Environment variable names the engine sets itself; a caller may not override them.
bool is_reserved_env_name(std::string_view name);

nlohmann::json to_json(const CompileOptions& options);

} // namespace sandbox::core
