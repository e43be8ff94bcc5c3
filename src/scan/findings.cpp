#include "scan/findings.h"

#include <fmt/format.h>

namespace sandbox::scan {

std::string_view to_string(RunsIn where)
{
  switch (where) {
  case RunsIn::host: return "host";
  case RunsIn::jail: return "jail";
  case RunsIn::mix: return "mix";
  }
  return "host";
}

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
    {"runs_in", to_string(finding.runs_in)},
  };
  if (finding.module) out["module"] = *finding.module;
  if (finding.function) out["function"] = *finding.function;
  if (finding.arity) out["arity"] = *finding.arity;
  if (finding.related) {
    out["related"] = {{"line", finding.related->line},
                      {"column", finding.related->column},
                      {"matched_text", finding.related->matched_text},
                      {"what", finding.related->what}};
  }
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

namespace {

std::optional<Finding> finding_from_json(const nlohmann::json& value)
{
  if (!value.is_object() || !value.contains("context") || !value["context"].is_object()) return std::nullopt;
  Finding finding;
  finding.type = value.at("type").get<std::string>();
  auto severity = value.at("severity").get<std::string>();
  bool known = false;
  for (auto candidate : {Severity::low, Severity::medium, Severity::high, Severity::critical}) {
    if (to_string(candidate) == severity) {
      finding.severity = candidate;
      known = true;
    }
  }
  if (!known) return std::nullopt;
  finding.operation = value.at("operation").get<std::string>();
  finding.file = value.at("file").get<std::string>();
  finding.line = value.at("line").get<std::uint32_t>();
  finding.column = value.at("column").get<std::uint32_t>();
  finding.message = value.at("message").get<std::string>();
  finding.surrounding_code = value["context"].at("surrounding_code").get<std::string>();
  finding.matched_text = value["context"].at("matched_text").get<std::string>();
  if (value.contains("module")) finding.module = value["module"].get<std::string>();
  if (value.contains("function")) finding.function = value["function"].get<std::string>();
  if (value.contains("arity")) finding.arity = value["arity"].get<std::uint32_t>();
  if (value.contains("related")) {
    const auto& related = value["related"];
    finding.related = RelatedPlace{related.at("line").get<std::uint32_t>(), related.at("column").get<std::uint32_t>(),
                                   related.at("matched_text").get<std::string>(), related.at("what").get<std::string>()};
  }
  auto runs_in = value.at("runs_in").get<std::string>();
  known = false;
  for (auto candidate : {RunsIn::host, RunsIn::jail, RunsIn::mix}) {
    if (to_string(candidate) == runs_in) {
      finding.runs_in = candidate;
      known = true;
    }
  }
  if (!known) return std::nullopt;
  return finding;
}

} // namespace

std::optional<ScanResult> result_from_json(const nlohmann::json& value)
{
  try {
    ScanResult result;
    for (auto [key, list] : {std::pair{"threats", &result.threats}, std::pair{"warnings", &result.warnings}}) {
      for (const auto& item : value.at(key)) {
        auto finding = finding_from_json(item);
        if (!finding) return std::nullopt;
        list->push_back(std::move(*finding));
      }
    }
    result.files_scanned = value.at("files_scanned").get<std::uint64_t>();
    result.bytes_scanned = value.at("bytes_scanned").get<std::uint64_t>();
    result.beams_audited = value.at("beams_audited").get<std::uint64_t>();
    result.scan_depth = value.at("scan_depth").get<int>();
    return result;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

Report::Report(const ScanConfig& config)
    : m_rules(config.restricted_modules, config.allowed_operations), m_depth(config.scan_depth),
      m_scope(config.scope)
{
  m_result.scan_depth = config.scan_depth;
}

void Report::add(Finding finding)
{
  if (m_rules.allowed(finding.operation)) return;
  // A file no backend compiles is never in a BEAM, whatever module it defines.
  if (m_file_runs_in != RunsIn::host) finding.runs_in = m_file_runs_in;
  if (m_scope == core::ScanScope::compiled && finding.runs_in != RunsIn::host &&
      finding.severity > Severity::low) {
    finding.message += fmt::format(" (was {}; reported as a warning: {})", to_string(finding.severity),
                                   finding.runs_in == RunsIn::jail
                                     ? "this code runs only inside the jail"
                                     : "a Mix task runs only under Mix, never in a host that loads the BEAMs");
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
