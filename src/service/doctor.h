#pragma once
// The `doctor` report (which isolation layers work here, the toolchain, and
// where the warm worker's program was found)
// as one JSON object, shared by `sandbox doctor --json` and the service.

#include <nlohmann/json.hpp>

namespace sandbox::service {

nlohmann::json doctor_json();

} // namespace sandbox::service
