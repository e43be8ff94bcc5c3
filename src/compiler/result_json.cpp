// The result of a compile as the specification's JSON object: one shape for
// the command line, the protocol and the Elixir client (docs/usage.md).

#include "compiler/isolated_compiler.h"

#include "jail/process.h"
#include "scan/findings.h"

namespace sandbox::compiler {

nlohmann::json to_json(const CompileResult& result)
{
  using nlohmann::json;
  if (!result) {
    return {{"ok", false}, {"error", core::to_json(result.error())}};
  }
  const auto& info = *result;
  json out;
  out["ok"] = true;
  out["beam_files"] = json::array();
  std::uintmax_t beam_bytes = info.beam_bytes.value_or(0);
  for (const auto& file : info.beam_files) {
    out["beam_files"].push_back(file.string());
    if (!info.beam_bytes) {
      std::error_code ec;
      auto size = fs::file_size(file, ec);
      beam_bytes += ec ? 0 : size;
    }
  }
  out["beam_bytes"] = beam_bytes;
  out["app_file"] = info.app_file ? json(info.app_file->string()) : json(nullptr);
  out["app_files"] = json::array();
  for (const auto& file : info.app_files) {
    out["app_files"].push_back(file.string());
  }
  if (info.app_files.empty() && info.app_file) {
    out["app_files"].push_back(info.app_file->string());
  }
  out["modules"] = info.modules;
  out["compilation_time"] = info.compilation_time_ms;
  out["temp_dir"] = info.temp_dir.string();
  out["output"] = info.output;
  out["warnings"] = json::array();
  for (const auto& warning : info.warnings) {
    out["warnings"].push_back(core::to_json(warning));
  }
  out["incremental"] = info.incremental;
  out["cache_hit"] = info.cache_hit;
  out["changed_files"] = info.changed_files;
  out["original_changed_files"] = info.original_changed_files;
  out["compilation_strategy"] = info.compilation_strategy;
  out["cache_warnings"] = info.cache_warnings;
  out["compiler"] = info.compiler;
  if (info.toolchain) {
    out["toolchain"] = info.toolchain->to_json();
  }
  out["resource_usage"] = jail::to_json(info.resource_usage);
  out["isolation"] = jail::to_json(info.isolation);
  if (!info.worker.is_null()) {
    out["worker"] = info.worker;
  }
  out["monitor_warnings"] = info.monitor_warnings;
  out["suspicious_artifacts"] = json::array();
  for (const auto& finding : info.suspicious_artifacts) {
    out["suspicious_artifacts"].push_back(to_json(finding));
  }
  out["security_warnings"] = scan::to_json(info.security_warnings);
  out["dependencies"] = json::array();
  for (const auto& dep : info.dependencies) {
    out["dependencies"].push_back({{"name", dep.name},
                                   {"version", dep.version},
                                   {"source", dep.source},
                                   {"cached", dep.cached},
                                   {"ebin", dep.ebin.string()}});
  }
  out["unenforced_options"] = json::array();
  for (const auto& item : info.unenforced_options) {
    out["unenforced_options"].push_back({{"option", item.option}, {"reason", item.reason}});
  }
  return out;
}

} // namespace sandbox::compiler
