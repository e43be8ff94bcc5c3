#pragma once
// The `doctor` report (which isolation layers work here, the toolchains, and
// where the warm worker's program was found) as one JSON object, shared by
// `sandbox doctor --json` and the service; and the `toolchains` listing.

#include <nlohmann/json.hpp>

#include <string>

namespace sandbox::service {

nlohmann::json doctor_json();

// {"config": FILE, "toolchains": [{name, path, ok, elixir, otp, erlang_path}
// or {name, path, ok: false, error}]}: the system's and each registered one,
// each checked as a compile would check it.
nlohmann::json toolchains_json();
// One line per toolchain, as `sandbox toolchains` prints them.
std::string toolchains_text(const nlohmann::json& report);

} // namespace sandbox::service
