#pragma once
// scan_code_security: the specification's pre-compilation scan of a sandbox.
// Every .ex/.exs file is read through the syntax tree, every .erl/.hrl file
// through the Erlang tokenizer, and every .beam shipped in the sandbox has
// its imports audited. Findings come back as threats and warnings.

#include "core/error.h"
#include "scan/findings.h"

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::scan {

namespace fs = std::filesystem;

struct ScanLimits {
  std::uint64_t max_file_bytes = 16ull << 20;
  std::uint64_t max_total_bytes = 512ull << 20;
  std::uint64_t max_files = 100'000;
};

enum class Language { elixir, erlang, beam, other };
Language language_of(const fs::path& path);

// Where the code of a source file of the sandbox runs when the whole tree is
// compiled: host for what the backends compile into BEAMs (lib/**/*.ex,
// src/**/*.erl, *.erl at the root, the .hrl files they include; the same
// under apps/<app>/ and deps/<dep>/), jail for everything else (mix.exs,
// config/, other .exs scripts, test/, priv/). A Mix task module inside a host
// file is told apart by the Elixir scanner.
RunsIn file_runs_in(const fs::path& relative);

// Scans the sandbox `root` (already resolved). With `only` non-empty, only
// those files (relative to root) are read.
// A file that cannot be read or parsed fails the scan (security_scan_failed):
// what cannot be read cannot be vetted.
std::expected<ScanResult, core::SecurityScanFailed>
scan_code_security(const fs::path& root, const ScanConfig& config,
                   const std::vector<fs::path>& only = {}, const ScanLimits& limits = {});

// One in-memory file, for tests and the service: the language is taken
// from the name's extension.
std::expected<void, core::SecurityScanFailed> scan_source(const std::string& relative_name,
                                                          std::string source, Report& report);

// Audits the BEAM files a compile produced, each judged by its module (see
// scan/beam_audit.h), and the application resource files it wrote (`mod`).
// Findings name a file by its file name.
ScanResult audit_beam_files(const std::vector<fs::path>& beams, const ScanConfig& config,
                            const std::vector<fs::path>& app_files = {});

} // namespace sandbox::scan
