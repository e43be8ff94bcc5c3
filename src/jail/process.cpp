#include "jail/process.h"

namespace sandbox::jail {

std::string_view to_string(Verdict verdict)
{
  switch (verdict) {
  case Verdict::exited: return "exited";
  case Verdict::signaled: return "signaled";
  case Verdict::wall_timeout: return "wall_timeout";
  case Verdict::cpu_time_limit: return "cpu_time_limit";
  case Verdict::memory_limit: return "memory_limit";
  case Verdict::process_limit: return "process_limit";
  case Verdict::output_limit: return "output_limit";
  case Verdict::seccomp_violation: return "seccomp_violation";
  case Verdict::setup_failure: return "setup_failure";
  }
  return "setup_failure";
}

nlohmann::json to_json(const Isolation& isolation)
{
  nlohmann::json out = nlohmann::json::object();
  out["mode"] = isolation.mode;
  for (const auto& [name, active] : isolation.layers) {
    out[name] = active;
  }
  out["enforced_limits"] = isolation.enforced_limits;
  return out;
}

nlohmann::json to_json(const ResourceUsage& usage)
{
  return {{"peak_memory_bytes", usage.peak_memory_bytes},
          {"cpu_time_ms", usage.cpu_time_ms},
          {"wall_time_ms", usage.wall_time_ms}};
}

} // namespace sandbox::jail
