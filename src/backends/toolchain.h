#pragma once
// Where the Elixir and Erlang tools are, and the environment a job gets:
// built from nothing, an allow-list plus the caller's `env` option.

#include "backends/backend.h"

#include <expected>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sandbox::backends {

struct Toolchain {
  fs::path elixir;
  fs::path elixirc;
  fs::path mix;
  fs::path erl;
  fs::path erlc;
  std::string path_env; // PATH for jobs: the tools' directories, /usr/bin, /bin
};

// Looks the tools up once, in the engine's PATH and the standard directories.
const std::expected<Toolchain, std::string>& toolchain();

// The first `{vsn,"..."}` of an application resource file ("" when absent).
std::string app_version(const fs::path& app_file);

// What names the toolchain in cache keys: Elixir's and OTP's versions and
// installation directories, read from their files (empty parts when absent).
const std::string& toolchain_identity();

// The toolchain, or the error a backend returns without it.
std::expected<const Toolchain*, core::Error> require_toolchain();

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
