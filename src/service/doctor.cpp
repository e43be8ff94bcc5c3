#include "service/doctor.h"

#include "backends/toolchain.h"
#include "jail/probe.h"
#include "worker/worker.h"

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
  // The warm pool's program: an installed engine must find its own copy.
  auto ebin = worker::locate_worker_ebin();
  json worker{{"ebin", ebin.path.string()}, {"found_by", ebin.found_by}, {"present", ebin.present}};
  return json{{"ok", supported && tools.has_value() && ebin.present},
              {"jail_supported", supported},
              {"layers", layers},
              {"toolchain", toolchain},
              {"worker", worker}};
}

} // namespace sandbox::service
