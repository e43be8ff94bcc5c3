#pragma once
// The specification's Sandbox.InProcessCompiler in C++: compiles through a
// pool of warm BEAM workers, each in its own jail, so a request pays no VM
// boot. The pool is process-wide and created on first use; a long-running
// host (`sandbox serve`) configures it once at start and shares it across
// requests.

#include "core/diagnostic.h"
#include "core/error.h"
#include "core/options.h"
#include "core/references.h"
#include "jail/process.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

struct InProcessOptions {
  bool debug_info = true;
  bool parallel = true;
  std::vector<std::string> source_files; // relative to the source directory; empty: all .ex
  core::CompileOptions limits;           // timeout, memory, processes, env, isolation
};

struct InProcessInfo {
  std::vector<std::string> modules;     // read from each produced BEAM
  std::vector<fs::path> beam_files;     // under the output directory
  std::vector<core::Diagnostic> warnings;
  std::vector<core::FileReferences> references;
  std::int64_t compilation_time_ms = 0;
  jail::ResourceUsage resource_usage;
};

using InProcessResult = std::expected<InProcessInfo, core::Error>;

// Compiles the .ex files under `source` into `output` (created if missing).
InProcessResult compile_in_process(const fs::path& source, const fs::path& output,
                                   const InProcessOptions& options = {});

// Compiles one source string; the BEAMs go to `output` when given, else to an
// engine temp dir the caller removes with cleanup_temp_artifacts.
// A string that defines no module is core::NoBytecodeGenerated.
InProcessResult compile_string(std::string_view code, std::string_view filename,
                               const std::optional<fs::path>& output = std::nullopt,
                               const core::CompileOptions& limits = {});

// A validated BEAM, its module name read from the file itself.
struct LoadedModule {
  std::string module;
  fs::path beam_file;
  std::string binary;
};

// Validates each BEAM and returns them in the order given.
std::expected<std::vector<LoadedModule>, core::Error> load_beam_files(const std::vector<fs::path>& files);

struct WorkerPoolSettings {
  std::size_t size = 2;            // workers alive at most, busy or idle
  std::size_t prestart = 1;        // idle workers kept ready
  std::chrono::milliseconds idle_timeout{60'000}; // an idle worker older than this is reaped
  bool reuse_per_sandbox = false;  // keep a worker for successive compiles of one sandbox
};

// Call before the first compile (later calls apply to workers started after).
void configure_worker_pool(const WorkerPoolSettings& settings);
// Stops every worker; the next compile starts the pool again.
void shutdown_worker_pool();

nlohmann::json to_json(const InProcessResult& result);

} // namespace sandbox::compiler
