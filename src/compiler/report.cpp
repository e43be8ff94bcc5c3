#include "compiler/report.h"

#include <fmt/format.h>

namespace sandbox::compiler {

namespace {

using nlohmann::json;

template <class T> T value_or(const json& object, const char* key, T fallback)
{
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return fallback;
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

std::string diagnostic_line(const json& d)
{
  auto file = value_or<std::string>(d, "file", "");
  auto line = value_or<int>(d, "line", 0);
  auto column = value_or<int>(d, "column", 0);
  std::string where = file.empty() ? "" : file;
  if (line > 0) {
    where += fmt::format(":{}", line);
  }
  if (column > 0) {
    where += fmt::format(":{}", column);
  }
  return fmt::format("{}{}: {}", where.empty() ? "" : where + ": ",
                     value_or<std::string>(d, "severity", "warning"),
                     value_or<std::string>(d, "message", ""));
}

json success_report(const json& result)
{
  auto time = value_or<std::int64_t>(result, "compilation_time", 0);
  auto beams = result.value("beam_files", json::array());
  auto warnings = result.value("warnings", json::array());
  std::string details = fmt::format("{} BEAM file(s), {} warning(s)", beams.size(), warnings.size());
  for (const auto& w : warnings) {
    details += "\n" + diagnostic_line(w);
  }
  for (const auto& finding : result.value("suspicious_artifacts", json::array())) {
    details += fmt::format("\nsuspicious artifact [{}] {}: {}", value_or<std::string>(finding, "severity", ""),
                           value_or<std::string>(finding, "path", ""),
                           value_or<std::string>(finding, "message", ""));
  }
  return {{"status", "success"},
          {"summary", fmt::format("Compilation successful ({}ms)", time)},
          {"details", details},
          {"metrics",
           {{"compilation_time", time},
            {"beam_files_count", beams.size()},
            {"output_size", value_or<std::string>(result, "output", "").size()},
            {"beam_bytes", value_or<std::uint64_t>(result, "beam_bytes", 0)},
            {"warnings_count", warnings.size()}}}};
}

json failure_report(const json& error)
{
  auto type = value_or<std::string>(error, "type", "unknown_error");
  std::string summary;
  std::string details;
  if (type == "compilation_failed") {
    summary = fmt::format("Compilation failed: Exit code {}", value_or<int>(error, "exit_code", 1));
    auto diagnostics = error.value("diagnostics", json::array());
    for (const auto& d : diagnostics) {
      if (value_or<std::string>(d, "severity", "") == "error") {
        details += (details.empty() ? "" : "\n") + diagnostic_line(d);
      }
    }
    if (details.empty()) {
      details = value_or<std::string>(error, "output", "");
    }
  } else if (type == "compilation_timeout") {
    summary = fmt::format("Compilation failed: timed out after {}ms", value_or<std::int64_t>(error, "timeout", 0));
  } else if (type == "resource_limit_exceeded") {
    auto details_obj = error.value("details", json::object());
    summary = fmt::format("Compilation failed: {} exceeded", value_or<std::string>(error, "limit_type", "limit"));
    if (auto compiling = value_or<std::string>(error, "compiling", ""); !compiling.empty()) {
      summary += " while compiling " + compiling;
    }
    details = fmt::format("current {} > limit {}", value_or<double>(details_obj, "current", 0),
                          value_or<double>(details_obj, "limit", 0));
    if (auto hint = value_or<std::string>(error, "hint", ""); !hint.empty()) {
      details += "\n" + hint;
    }
  } else if (type == "security_threats_detected") {
    auto threats = error.value("threats", json::array());
    summary = fmt::format("Compilation failed: {} security threat(s) detected", threats.size());
    for (const auto& t : threats) {
      details += fmt::format("{}{}:{} [{}] {}", details.empty() ? "" : "\n", value_or<std::string>(t, "file", ""),
                             value_or<int>(t, "line", 0), value_or<std::string>(t, "severity", ""),
                             value_or<std::string>(t, "message", ""));
    }
  } else {
    summary = "Compilation failed: " + type;
    for (const char* key : {"reason", "error", "path", "file", "option", "stage"}) {
      if (auto v = value_or<std::string>(error, key, ""); !v.empty()) {
        details += fmt::format("{}{}: {}", details.empty() ? "" : "\n", key, v);
      }
    }
  }
  return {{"status", "failure"},
          {"summary", summary},
          {"details", details},
          {"error_type", type},
          {"metrics", {{"compilation_time", 0}, {"beam_files_count", 0}}}};
}

} // namespace

std::expected<json, std::string> compilation_report(const json& result)
{
  if (!result.is_object() || !result.contains("ok") || !result["ok"].is_boolean()) {
    return std::unexpected("not a compile result: expected an object with a boolean \"ok\"");
  }
  if (result["ok"].get<bool>()) {
    return success_report(result);
  }
  auto error = result.find("error");
  if (error == result.end() || !error->is_object()) {
    return std::unexpected("not a compile result: \"ok\" is false but there is no \"error\" object");
  }
  return failure_report(*error);
}

std::string format_report(const json& report)
{
  std::string out = value_or<std::string>(report, "summary", "") + "\n";
  auto details = value_or<std::string>(report, "details", "");
  if (!details.empty()) {
    out += details + "\n";
  }
  return out;
}

} // namespace sandbox::compiler
