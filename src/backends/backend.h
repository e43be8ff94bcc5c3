#pragma once
// Backends turn a compile request into a command for a ProcessRunner and turn
// what the compiler printed into diagnostics. They never write into the
// sandbox tree: every output goes under the job's work directory.

#include "core/diagnostic.h"
#include "core/error.h"
#include "core/options.h"
#include "core/references.h"
#include "jail/process.h"

#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::backends {

namespace fs = std::filesystem;

// Where the sandbox and the job's writable directory are, on the host and as
// the job sees them (the same paths unless the runner remaps them).
struct JobPaths {
  fs::path sandbox_host; // resolved, an existing directory
  fs::path work_host;    // the job's writable directory, created by the caller
  fs::path sandbox_job;
  fs::path work_job;

  // `host` (under work_host) as the job sees it.
  [[nodiscard]] fs::path work_in_job(const fs::path& host) const;
};

JobPaths make_job_paths(const fs::path& sandbox_host, const fs::path& work_host,
                        const jail::ProcessRunner& runner);

// A dependency as Mix resolved it for the project's environment.
struct DeclaredDependency {
  std::string app;
  std::string kind;    // hex, path, umbrella, git, other
  std::string package; // the Hex package name (kind hex)
};

struct Toolchain;

struct BackendRequest {
  JobPaths paths;
  const core::CompileOptions* options = nullptr;
  // The toolchain the job runs with (resolved from options->toolchain); unset:
  // resolved by the backend.
  std::shared_ptr<const Toolchain> toolchain;
  // Relative to the sandbox, already checked to resolve inside it; empty means
  // the backend's default discovery.
  std::vector<fs::path> source_files;
  // Where a partial compile finds the previous build's BEAMs, as the job sees
  // it; put on the code path by the source compilers.
  std::optional<fs::path> prior_code_path;
  // mix: Hex packages the engine has verified and placed under the work
  // directory (deps/APP sources, build/lib/APP when already compiled). A
  // project that needs a package not among them stops after reporting its
  // dependencies (BackendRun::needs_packages).
  std::optional<std::vector<std::string>> provided_packages;
  // mix: compile only the dependencies (the engine's per-package build).
  bool packages_only = false;
  // mix: when Mix needs packages and none were provided, the job waits while
  // this runs (on another thread): it places them and returns their names, or
  // returns nullopt and the job stops (BackendRun::needs_packages). It must
  // not start jobs of its own.
  std::function<std::optional<std::vector<std::string>>(const std::vector<DeclaredDependency>&)>
    provide_packages;
};


struct BackendRun {
  std::vector<fs::path> output_dirs;  // host directories holding the produced .beam/.app files
  std::optional<std::string> app_name; // the Mix project's application, as Mix reported it
  std::vector<std::string> umbrella_apps; // an umbrella's applications, in Mix's order
  std::vector<DeclaredDependency> dependencies;
  // The project needs Hex packages the engine has not provided yet: nothing
  // was compiled; prepare them and run again.
  bool needs_packages = false;
  // The packages the job compiled with (given in the request, or placed while
  // it waited).
  std::vector<std::string> provided_packages;
  std::string output;                  // what the compiler printed (stdout and stderr)
  std::vector<core::Diagnostic> diagnostics;
  std::vector<fs::path> compiled_sources; // relative to the sandbox
  std::vector<core::FileReferences> references; // per source file, where the backend captures them
  jail::ResourceUsage usage;
  std::vector<std::string> monitor_warnings;
};

class CompilerBackend {
public:
  virtual ~CompilerBackend() = default;
  virtual std::expected<BackendRun, core::Error> compile(const BackendRequest& request,
                                                         jail::ProcessRunner& runner) const = 0;
};

// The backend for mix, elixirc or erlc (in_process is served by the worker pool).
std::unique_ptr<CompilerBackend> make_backend(core::Backend backend);

// Source discovery without following symlinks: regular files under `dir`
// (relative to root) whose name ends with `extension`, sorted.
std::expected<std::vector<fs::path>, std::string>
find_sources(const fs::path& root, const fs::path& dir, std::string_view extension, bool recursive);

// A relative source path as a command-line argument: "./-x.ex" rather than
// "-x.ex", so no file name is read as a flag.
std::string as_argument(const fs::path& relative);

} // namespace sandbox::backends
