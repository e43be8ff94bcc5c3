#pragma once
// The `doctor` report (which isolation layers work here, and the toolchain)
// as one JSON object, shared by `sandbox doctor --json` and the service.

#include <nlohmann/json.hpp>

namespace sandbox::service {

nlohmann::json doctor_json();

} // namespace sandbox::service
