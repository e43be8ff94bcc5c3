#include "service/doctor.h"

#include "backends/toolchain.h"
#include "compiler/incremental_compile.h"
#include "jail/probe.h"
#include "worker/worker.h"

#include <fmt/format.h>

#include <sstream>

namespace sandbox::service {

using nlohmann::json;

json toolchains_json()
{
  json list = json::array();
  auto describe = [&](const std::string& name, const std::string& spec, const std::string& given) {
    auto tools = backends::resolve_toolchain(spec);
    json entry{{"name", name}, {"path", given}, {"ok", tools.has_value()}};
    if (tools) {
      entry["path"] = (*tools)->prefix.string();
      entry["elixir"] = (*tools)->elixir_version;
      entry["otp"] = (*tools)->otp_version;
      entry["erlang_path"] = (*tools)->erlang_root.string();
    } else {
      entry["error"] = core::to_json(tools.error());
    }
    list.push_back(std::move(entry));
  };
  describe("system", "", "");
  auto registered = backends::registered_toolchains();
  json out{{"config", backends::toolchain_config_file().string()}, {"toolchains", json::array()}};
  if (!registered) {
    out["config_error"] = registered.error();
  } else {
    for (const auto& r : *registered) {
      describe(r.name, r.name, r.directory);
    }
  }
  out["toolchains"] = std::move(list);
  return out;
}

std::string toolchains_text(const json& report)
{
  std::ostringstream out;
  for (const auto& t : report["toolchains"]) {
    if (t.value("ok", false)) {
      out << fmt::format("{:<12} Elixir {:<8} OTP {:<10} {}\n", t.value("name", ""), t.value("elixir", ""),
                         t.value("otp", ""), t.value("path", ""));
    } else {
      const auto& error = t["error"];
      out << fmt::format("{:<12} UNUSABLE {}: {}\n", t.value("name", ""), t.value("path", ""),
                         error.value("reason", error.value("message", error.dump())));
    }
  }
  out << fmt::format("registered in {}{}\n", report.value("config", ""),
                     report.contains("config_error") ? " (" + report.value("config_error", "") + ")" : "");
  return out.str();
}

json doctor_json()
{
  auto probes = jail::probe_isolation();
  bool supported = jail::jail_supported();
  const auto& tools = backends::system_toolchain();
  json layers = json::array();
  for (const auto& p : probes) {
    layers.push_back({{"name", p.name}, {"works", p.works}, {"detail", p.detail}});
  }
  json toolchain = tools ? json{{"elixir", (*tools)->elixir.string()}, {"elixirc", (*tools)->elixirc.string()},
                                {"mix", (*tools)->mix.string()}, {"erl", (*tools)->erl.string()},
                                {"erlc", (*tools)->erlc.string()},
                                {"elixir_version", (*tools)->elixir_version},
                                {"otp_version", (*tools)->otp_version}}
                         : json{{"error", tools.error()}};
  // The warm pool's program: an installed engine must find its own copy.
  auto ebin = worker::locate_worker_ebin();
  json worker{{"ebin", ebin.path.string()}, {"found_by", ebin.found_by}, {"present", ebin.present}};
  auto toolchains = toolchains_json();
  return json{{"ok", supported && tools.has_value() && ebin.present},
              {"jail_supported", supported},
              {"layers", layers},
              {"toolchain", toolchain},
              {"toolchains", toolchains["toolchains"]},
              {"toolchain_config", toolchains["config"]},
              {"worker", worker},
              {"watch", compiler::watch_support_json()}};
}

} // namespace sandbox::service
