#pragma once
// Where the Elixir and Erlang tools are, and the environment a job gets:
// built from nothing, an allow-list plus the caller's `env` option.

#include "backends/backend.h"

#include <nlohmann/json.hpp>

#include <expected>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sandbox::backends {

// One Elixir installation and the Erlang/OTP it runs on.
struct Toolchain {
  std::string name;   // "system", a registered name, or the prefix as given
  fs::path prefix;    // the directory given (the system's: where `elixir` was found)
  fs::path elixir;
  fs::path elixirc;
  fs::path mix;
  fs::path erl;
  fs::path erlc;
  fs::path elixir_root; // holds lib/elixir/ebin (symlinks resolved)
  fs::path erlang_root; // holds releases/ and erts-* (symlinks resolved)
  std::string elixir_version; // "1.18.4", from lib/elixir/ebin/elixir.app
  std::string otp_version;    // "25.3.2.8", from releases/*/OTP_VERSION
  std::string identity;       // versions, roots and file stamps: part of every cache key
  std::string path_env;       // PATH for jobs: the tools' directories, /usr/bin, /bin
  // What the jail binds read-only: this Elixir and this Erlang, the shared
  // libraries and the few programs their scripts call; nothing else.
  std::vector<fs::path> jail_paths;
  bool system = true;

  // Major.minor of Elixir at least `major`.`minor`.
  [[nodiscard]] bool elixir_at_least(int major, int minor) const;
  // {"elixir": ..., "otp": ..., "path": ..., "name": ...} as results carry it.
  [[nodiscard]] nlohmann::json to_json() const;
};

using ToolchainRef = std::shared_ptr<const Toolchain>;

// The system's toolchain: the tools looked up once in the engine's PATH and
// the standard directories.
const std::expected<ToolchainRef, std::string>& system_toolchain();

// The toolchain a request names: "" is the system's; an absolute directory is
// an Elixir installation prefix (DIR/bin/elixir, DIR/lib/elixir/ebin, its
// Erlang from DIR/bin/erl when there is one, else the system's); anything
// else is a name registered in toolchains.conf (toolchain_config_file()).
// A prefix is checked once (it must start, and its Elixir must accept its
// OTP) and the verdict kept until its files change. Errors are InvalidOption
// {option "toolchain"} with the reason; the system's missing tools are
// JailSetupFailed as before.
std::expected<ToolchainRef, core::Error> resolve_toolchain(std::string_view spec);

// The toolchain of a request: request.toolchain when the caller resolved it,
// else resolve_toolchain(options->toolchain).
std::expected<ToolchainRef, core::Error> require_toolchain(const BackendRequest& request);

// <config>/toolchains.conf: $SANDBOX_CONFIG_DIR, else $XDG_CONFIG_HOME/sandbox,
// else ~/.config/sandbox. Lines "NAME = DIR"; '#' starts a comment.
fs::path toolchain_config_file();

struct RegisteredToolchain {
  std::string name;
  std::string directory;
};
// The registered toolchains, or why the file cannot be read (absent: none).
std::expected<std::vector<RegisteredToolchain>, std::string> registered_toolchains();

// A valid toolchain name: [A-Za-z0-9][A-Za-z0-9._-]{0,63}, not "system".
bool valid_toolchain_name(std::string_view name);

// The first `{vsn,"..."}` of an application resource file ("" when absent).
std::string app_version(const fs::path& app_file);

// The system toolchain's identity (see Toolchain::identity).
const std::string& toolchain_identity();

// The job environment: PATH, HOME and TMPDIR inside the work directory,
// LANG=C.UTF-8, `extra` (the backend's MIX_* variables), then the caller's
// env option. No variable of the engine's own environment is passed on.
std::vector<std::string> job_environment(const BackendRequest& request,
                                         const std::map<std::string, std::string>& extra);

// The limits a job runs under, from the compile options.
jail::Limits job_limits(const core::CompileOptions& options);

// A spec with argv, environment, cwd (the sandbox), binds and limits.
jail::ProcessSpec job_spec(const BackendRequest& request, std::vector<std::string> argv,
                           const std::map<std::string, std::string>& extra_env);

// Runs the job and maps its verdict onto the specification's errors. On
// success the run carries output, diagnostics and usage.
std::expected<BackendRun, core::Error> run_job(const BackendRequest& request,
                                               jail::ProcessRunner& runner,
                                               const jail::ProcessSpec& spec, bool erlang_output);

// The specification's error for a job that did not exit 0: a compilation
// failure carrying `output` and `diagnostics`, or the limit, crash or setup
// failure that ended it. `job` names what ran (for example "mix compile"):
// a limit verdict says it, with what the job printed last and the option
// that raises the limit.
core::Error verdict_error(const jail::ProcessResult& result, const jail::Limits& limits,
                          std::string output, std::vector<core::Diagnostic> diagnostics,
                          std::string_view job = {});

// "mix compile (Compiling 3 files (.ex))": `job` and the last progress line
// of `output` (Mix's "Compiling ..." or "==> app"), whichever are known.
std::string describe_job(std::string_view job, std::string_view output);

// Runs a compiler that writes into <work>/ebin: `argv` then each source as an
// argument; on success the run lists that directory and the sources.
std::expected<BackendRun, core::Error> run_source_compiler(const BackendRequest& request,
                                                           jail::ProcessRunner& runner,
                                                           std::vector<std::string> argv,
                                                           std::vector<fs::path> sources,
                                                           bool erlang_output);

} // namespace sandbox::backends
