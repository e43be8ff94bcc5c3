#include "scan/findings.h"

#include <fmt/format.h>

namespace sandbox::scan {

nlohmann::json to_json(const Finding& finding)
{
  nlohmann::json out = {
    {"type", finding.type},
    {"severity", to_string(finding.severity)},
    {"operation", finding.operation},
    {"file", finding.file},
    {"line", finding.line},
    {"column", finding.column},
    {"message", finding.message},
    {"context",
     {{"surrounding_code", finding.surrounding_code},
      {"matched_text", finding.matched_text},
      {"line_number", finding.line}}},
  };
  if (finding.module) out["module"] = *finding.module;
  if (finding.function) out["function"] = *finding.function;
  if (finding.arity) out["arity"] = *finding.arity;
  return out;
}

nlohmann::json to_json(const std::vector<Finding>& findings)
{
  auto out = nlohmann::json::array();
  for (const auto& finding : findings) out.push_back(to_json(finding));
  return out;
}

nlohmann::json to_json(const ScanResult& result)
{
  return {{"threats", to_json(result.threats)},
          {"warnings", to_json(result.warnings)},
          {"files_scanned", result.files_scanned},
          {"bytes_scanned", result.bytes_scanned},
          {"beams_audited", result.beams_audited},
          {"scan_depth", result.scan_depth}};
}

Report::Report(const ScanConfig& config)
    : m_rules(config.restricted_modules, config.allowed_operations), m_depth(config.scan_depth)
{
  m_result.scan_depth = config.scan_depth;
}

void Report::add(Finding finding)
{
  if (m_rules.allowed(finding.operation)) return;
  if (m_not_compiled && finding.severity > Severity::low) {
    finding.message += fmt::format(" (was {}; reported as a warning: no compile runs this file)",
                                   to_string(finding.severity));
    finding.severity = Severity::low;
  }
  auto& into = finding.severity == Severity::low ? m_result.warnings : m_result.threats;
  into.push_back(std::move(finding));
}

std::string clip(std::string_view text, std::size_t max)
{
  std::string out;
  out.reserve(std::min(text.size(), max));
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  }
  return out;
}

std::string surrounding_lines(std::string_view source, std::uint32_t line)
{
  std::string out;
  std::uint32_t current = 1;
  std::size_t start = 0;
  while (start <= source.size() && current <= line + 1) {
    auto end = source.find('\n', start);
    if (end == std::string_view::npos) end = source.size();
    if (current + 1 >= line) {
      auto text = source.substr(start, end - start);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (!out.empty()) out += '\n';
      out += text.size() > 240 ? std::string(text.substr(0, 240)) + "..." : std::string(text);
    }
    if (end == source.size()) break;
    start = end + 1;
    ++current;
  }
  return out;
}

} // namespace sandbox::scan
