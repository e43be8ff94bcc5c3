#pragma once
// The specification's Sandbox.InProcessCompiler in C++: compiles through a
// pool of warm BEAM workers, each in its own jail, so a request pays no VM
// boot. The pool is process-wide and created on first use; a long-running
// host (`sandbox serve`) configures it once at start and shares it across
// requests.

#include "backends/toolchain.h"
#include "core/diagnostic.h"
#include "core/error.h"
#include "core/options.h"
#include "compiler/artifacts.h"
#include "compiler/isolated_compiler.h"
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

// A BEAM of a module not being recompiled, put on a partial compile's code path.
struct PriorBeam {
  std::string file_name; // Elixir.Foo.beam
  std::string bytes;
  std::string sha256; // of bytes, when the caller knows it ("" : computed)
};

// A file name a prior BEAM may have: one plain component ending in .beam.
bool prior_beam_name(std::string_view name);

// Writes copies of `beams` into `dir` for a partial compile's code path
// (copies, so a job cannot write through to the engine's object store).
std::expected<void, std::string> place_prior_beams(const fs::path& dir, const std::vector<PriorBeam>& beams);

struct InProcessOptions {
  bool debug_info = true;
  bool parallel = true;
  std::vector<std::string> source_files; // relative to the source directory; empty: all .ex
  core::CompileOptions limits;           // timeout, memory, processes, env, isolation
  std::vector<PriorBeam> prior_beams;    // on the code path for this compile only
};

// What happened to the warm worker around one job (the result's `worker`).
struct WorkerOutcome {
  bool reused = false;   // the worker had served an earlier job (of any tenant)
  bool confined = false; // the submission is confined (scan/confinement.h)
  std::string reason;    // not confined: the first cause the classifier found
  bool kept = false;     // the worker passed the hygiene check and serves the next job
  std::string retired;   // not kept: why the worker was destroyed
  // A sandbox's sources (source_mirrors.h): whether the kept copy of an
  // earlier job was brought in step, and how many entries were copied.
  bool sources_lent = false;
  bool sources_reused = false;
  std::size_t sources_copied = 0;
};

struct InProcessInfo {
  std::vector<std::string> modules;     // read from each produced BEAM (the atom: "Elixir.Foo")
  std::vector<fs::path> beam_files;     // under the output directory
  std::vector<core::Diagnostic> warnings;
  std::vector<core::FileReferences> references;
  std::vector<std::string> compiled_sources; // relative to the source directory
  std::int64_t compilation_time_ms = 0;
  jail::ResourceUsage resource_usage;    // wall time of the request (the worker's VM is shared across its life)
  fs::path temp_dir;                     // compile_string without an output: the engine temp dir holding the BEAMs
  std::vector<ArtifactFinding> suspicious_artifacts; // what the worker left in its output besides BEAMs
  bool reused_worker = false;            // served by a worker that served a job before (worker.reused)
  std::uint64_t worker_id = 0;           // which worker served it (unique in this process)
  backends::ToolchainRef toolchain;      // the worker's toolchain
  WorkerOutcome worker;
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
  // The prestarted workers' toolchain (a prefix or a registered name); empty:
  // the system's, then that of the latest job.
  std::string toolchain;
};

// Call before the first compile (later calls apply to workers started after).
// Prestarting begins with this call: a pool that was never configured starts
// workers on demand only (what a one-shot command wants).
// The warm pool and the kept copies of sandboxes, for status reports.
nlohmann::json worker_pool_json();

void configure_worker_pool(const WorkerPoolSettings& settings);
// Stops every worker; the next compile starts the pool again.
void shutdown_worker_pool();
// True when the pool was configured and keeps warm workers (a long-running
// host); a one-shot command's pool boots a worker per job.
bool worker_pool_is_warm();

nlohmann::json to_json(const InProcessResult& result);
// {reused, confined, kept} with `reason` when not confined and `retired` when not kept.
nlohmann::json to_json(const WorkerOutcome& outcome);

// compile_sandbox with compiler: in_process: `sources` (relative, already
// checked; empty for lib/**/*.ex) compiled through the pool into a marked
// engine temp dir, reported as a CompileInfo. `prior_beams` are on the code
// path (a partial compile of the incremental pipeline).
CompileResult compile_sandbox_in_process(const fs::path& sandbox, const std::vector<fs::path>& sources,
                                         const core::CompileOptions& options,
                                         std::vector<PriorBeam> prior_beams = {});

} // namespace sandbox::compiler
