#include "service/doctor.h"

#include "backends/toolchain.h"
#include "jail/probe.h"

namespace sandbox::service {

nlohmann::json doctor_json()
{
  using nlohmann::json;
  auto probes = jail::probe_isolation();
  bool supported = jail::jail_supported();
  const auto& tools = backends::toolchain();
  json layers = json::array();
  for (const auto& p : probes) {
    layers.push_back({{"name", p.name}, {"works", p.works}, {"detail", p.detail}});
  }
  json toolchain = tools ? json{{"elixir", tools->elixir.string()}, {"elixirc", tools->elixirc.string()},
                                {"mix", tools->mix.string()}, {"erl", tools->erl.string()},
                                {"erlc", tools->erlc.string()}}
                         : json{{"error", tools.error()}};
  return json{{"ok", supported && tools.has_value()},
              {"jail_supported", supported},
              {"layers", layers},
              {"toolchain", toolchain}};
}

} // namespace sandbox::service
