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

// True for the files a compile reads: mix.exs, config/, lib/, src/,
// include/, deps/ (and the same under apps/<app>/ of an umbrella). Findings in
// other files (test/, scripts) are reported as warnings: no compile runs them.
bool is_compile_input(const fs::path& relative);

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

// Audits BEAM files produced by a compile; `names` label them in findings.
ScanResult audit_beam_files(const std::vector<fs::path>& beams, const ScanConfig& config);

} // namespace sandbox::scan
