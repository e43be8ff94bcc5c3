#include "compiler/security_gate.h"

#include "compiler/sandbox_path.h"
#include "scan/scanner.h"

namespace sandbox::compiler {

namespace {

scan::ScanConfig config_of(const core::CompileOptions& options)
{
  return {options.restricted_modules, options.allowed_operations, kDefaultScanDepth};
}

std::expected<std::vector<scan::Finding>, core::Error> gate(scan::ScanResult result)
{
  if (!result.threats.empty()) {
    return std::unexpected(core::SecurityThreatsDetected{scan::to_json(result.threats)});
  }
  return std::move(result.warnings);
}

} // namespace

std::expected<scan::ScanResult, core::Error> scan_code_security(const std::string& path,
                                                                const ScanOptions& options)
{
  if (options.scan_depth < 0) {
    return std::unexpected(core::InvalidOption{"scan_depth", "must be 0 or more"});
  }
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) return std::unexpected(sandbox.error());
  auto result = scan::scan_code_security(
    *sandbox, {options.restricted_modules, options.allowed_operations, options.scan_depth});
  if (!result) return std::unexpected(result.error());
  return std::move(*result);
}

std::expected<std::vector<scan::Finding>, core::Error>
security_gate_before(const fs::path& sandbox, const std::vector<fs::path>& source_files,
                     const core::CompileOptions& options)
{
  if (!options.security_scan) return std::vector<scan::Finding>{};
  // Mix compiles the whole project whatever source_files says.
  auto only = options.compiler == core::Backend::mix ? std::vector<fs::path>{} : source_files;
  auto result = scan::scan_code_security(sandbox, config_of(options), only);
  if (!result) return std::unexpected(result.error());
  return gate(std::move(*result));
}

std::expected<std::vector<scan::Finding>, core::Error>
security_gate_after(const std::vector<fs::path>& beam_files, const core::CompileOptions& options)
{
  if (!options.security_scan) return std::vector<scan::Finding>{};
  return gate(scan::audit_beam_files(beam_files, config_of(options)));
}

} // namespace sandbox::compiler
