#include "scan/beam_audit.h"

#include "util/fs.h"

#include <fmt/format.h>

#include <algorithm>

namespace sandbox::scan {

namespace {

std::string erlang_mfa(const beam::Import& import)
{
  return fmt::format("{}:{}/{}", import.module, import.function, import.arity);
}

} // namespace

void audit_beam(const beam::BeamInfo& info, std::string_view file, Report& report)
{
  const auto& rules = report.rules();
  for (const auto& import : info.imports) {
    auto module = module_from_atom(import.module);
    Finding finding;
    finding.file = std::string(file);
    finding.module = module;
    finding.function = import.function;
    finding.arity = import.arity;
    finding.matched_text = erlang_mfa(import);
    finding.surrounding_code = fmt::format("module {} imports {}", info.module, erlang_mfa(import));
    if (module == ":erlang" && import.function == "apply" && (import.arity == 2 || import.arity == 3)) {
      // The compiler turns apply with a literal module into a direct call;
      // an import of erlang:apply means the module or function is computed.
      finding.type = "dynamic_dispatch";
      finding.operation = "dynamic_dispatch";
      finding.severity = Severity::low;
      finding.message = fmt::format("{} calls erlang:apply/{} with a computed module or function",
                                    info.module, import.arity);
      report.add(std::move(finding));
      continue;
    }
    auto rule = rules.lookup(module, import.function);
    if (!rule) continue;
    std::string upper(to_string(rule->severity));
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    finding.type = rule->operation == "restricted_module" ? "restricted_module" : "dangerous_import";
    finding.operation = std::string(rule->operation);
    finding.severity = rule->severity;
    finding.message = fmt::format("{} detected in bytecode: {} imports {} [{} RISK]", rule->message,
                                  info.module, erlang_mfa(import), upper);
    report.add(std::move(finding));
  }
}

void audit_beam_file(const std::filesystem::path& path, std::string_view file, Report& report)
{
  ++report.result().beams_audited;
  auto info = beam::validate_beam_file(path);
  if (!info) {
    // validate_beam_file also wants the module named after the file; a
    // shipped BEAM under another name is still read for its imports.
    auto parsed = [&]() -> std::expected<beam::BeamInfo, beam::BeamError> {
      auto bytes = util::read_file(path, beam::Limits{}.max_file_bytes);
      if (!bytes) return std::unexpected(beam::BeamError{bytes.error()});
      return beam::parse_beam(*bytes);
    }();
    if (!parsed) {
      Finding finding;
      finding.type = "unverifiable_beam";
      finding.operation = "code_loading";
      finding.severity = Severity::high;
      finding.file = std::string(file);
      finding.message = fmt::format("A BEAM file that cannot be read or parsed cannot be audited: {}",
                                    info.error().reason);
      finding.matched_text = std::string(file);
      report.add(std::move(finding));
      return;
    }
    audit_beam(*parsed, file, report);
    return;
  }
  audit_beam(*info, file, report);
}

} // namespace sandbox::scan
