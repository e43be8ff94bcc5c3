#pragma once
// The facade: the specification's Sandbox.IsolatedCompiler in C++. The
// pipeline is validate path -> (scan) -> backend in a runner -> collect and
// validate outputs.

#include "backends/toolchain.h"
#include "compiler/artifacts.h"
#include "core/error.h"
#include "core/options.h"
#include "core/references.h"
#include "jail/process.h"
#include "scan/findings.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

// An option that was accepted but that this build does not enforce yet; the
// result says so instead of silently ignoring it.
struct UnenforcedOption {
  std::string option;
  std::string reason;
};

// An application the project depends on (a Hex package, a path
// dependency, an umbrella sibling), with its BEAMs in its own ebin.
struct DependencyInfo {
  std::string name;
  std::string version;
  std::string source; // hex, path, umbrella
  bool cached = false; // a Hex package build taken from the store
  fs::path ebin;       // <temp_dir>/lib/NAME/ebin
  std::string store_key; // hex: the package build's key in the engine's store
};

// The specification's compile_info.
struct CompileInfo {
  std::vector<fs::path> beam_files;
  // The sum of their sizes when the engine wrote them itself (a result from
  // the cache); otherwise the result's beam_bytes is read from the files.
  std::optional<std::uint64_t> beam_bytes;
  std::optional<fs::path> app_file;
  std::vector<fs::path> app_files; // every .app the compile produced
  std::vector<std::string> modules; // read from each BEAM's atom table
  std::int64_t compilation_time_ms = 0;
  fs::path temp_dir;
  std::string output;
  std::vector<core::Diagnostic> warnings;
  bool incremental = false;
  bool cache_hit = false;
  std::vector<std::string> changed_files;
  std::vector<std::string> original_changed_files;
  std::string compilation_strategy = "full";
  std::string compiler;
  jail::ResourceUsage resource_usage;
  jail::Isolation isolation;
  std::vector<std::string> monitor_warnings;
  std::vector<ArtifactFinding> suspicious_artifacts;
  std::vector<UnenforcedOption> unenforced_options;
  // Low-severity findings of the security scan and the bytecode audit.
  std::vector<scan::Finding> security_warnings;
  // Per source file references, where the backend captured them (in_process).
  std::vector<core::FileReferences> references;
  // Why the compile cache was not used as it was (unverifiable cache files,
  // a read-only sandbox, a fallback to a full compile), for the caller to see.
  std::vector<std::string> cache_warnings;
  std::vector<DependencyInfo> dependencies;
  // The toolchain that ran (result field `toolchain`).
  std::shared_ptr<const backends::Toolchain> toolchain;
  // compiler in_process: what happened to the warm worker (result field
  // `worker`: reused, confined, reason, kept, retired); null otherwise.
  nlohmann::json worker;
};

using CompileResult = std::expected<CompileInfo, core::Error>;

CompileResult compile_sandbox(const std::string& path, const core::CompileOptions& options = {});

// Compiles one .ex (elixirc) or .erl (erlc) file; the sandbox is its directory.
CompileResult compile_file(const std::string& file, const core::CompileOptions& options = {});

// Checks each BEAM file (container, tables, literals, module name vs file name).
std::expected<void, core::Error> validate_beam_files(const std::vector<fs::path>& files);
std::expected<void, core::Error> validate_compilation(const CompileInfo& info);

// Removes a temp dir this engine created; anything else is refused.
std::expected<void, core::Error> cleanup_temp_artifacts(const fs::path& temp_dir);

// {"ok": true, ...} or {"ok": false, "error": {...}} as DESIGN.md's contract.
nlohmann::json to_json(const CompileResult& result);

} // namespace sandbox::compiler
