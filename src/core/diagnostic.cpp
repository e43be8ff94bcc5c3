#include "core/diagnostic.h"

namespace sandbox::core {

std::string_view to_string(Severity severity)
{
  switch (severity) {
  case Severity::error: return "error";
  case Severity::warning: return "warning";
  case Severity::info: return "info";
  }
  return "warning";
}

nlohmann::json to_json(const Diagnostic& diagnostic)
{
  nlohmann::json out;
  out["file"] = diagnostic.file;
  out["line"] = diagnostic.line > 0 ? nlohmann::json(diagnostic.line) : nlohmann::json(nullptr);
  out["column"] =
    diagnostic.column > 0 ? nlohmann::json(diagnostic.column) : nlohmann::json(nullptr);
  out["severity"] = to_string(diagnostic.severity);
  out["message"] = diagnostic.message;
  return out;
}

} // namespace sandbox::core
