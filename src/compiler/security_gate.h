#pragma once
// The security scanner in the compile pipeline: the specification's
// scan_code_security, the scan before a compile and the audit of the BEAMs a
// compile produced. compile_sandbox calls the two gates; a threat from either
// is security_threats_detected, and warnings travel with the result.

#include "core/error.h"
#include "core/options.h"
#include "scan/findings.h"

#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

// The scan depth compiles use (the compile options have no scan_depth).
constexpr int kDefaultScanDepth = 3;

struct ScanOptions {
  std::vector<std::string> restricted_modules = core::default_restricted_modules();
  std::vector<std::string> allowed_operations;
  int scan_depth = kDefaultScanDepth;
  core::ScanScope scope = core::ScanScope::compiled;
};

// Resolves `path` as compile_sandbox does and scans it.
std::expected<scan::ScanResult, core::Error> scan_code_security(const std::string& path,
                                                                const ScanOptions& options = {});

// Before compiling: threats stop the compile; returns the warnings. Does
// nothing when options.security_scan is false. With source_files given, only
// those files are scanned.
std::expected<std::vector<scan::Finding>, core::Error>
security_gate_before(const fs::path& sandbox, const std::vector<fs::path>& source_files,
                     const core::CompileOptions& options);

// After compiling: the import tables of the produced BEAMs, each judged by
// its module, and the callback module of the application files written.
std::expected<std::vector<scan::Finding>, core::Error>
security_gate_after(const std::vector<fs::path>& beam_files, const core::CompileOptions& options,
                    const std::vector<fs::path>& app_files = {});

} // namespace sandbox::compiler
