#pragma once
// compilation_report: the specification's success and failure summaries and
// metrics, from a compile result in its JSON form (so `sandbox report` can
// read a result another process produced).

#include <nlohmann/json.hpp>

#include <expected>
#include <string>

namespace sandbox::compiler {

// {"status": "success"|"failure", "summary", "details", "metrics"}; a JSON
// value that is not a compile result is an error naming what is wrong.
std::expected<nlohmann::json, std::string> compilation_report(const nlohmann::json& result);

// The report as text for people.
std::string format_report(const nlohmann::json& report);

} // namespace sandbox::compiler
