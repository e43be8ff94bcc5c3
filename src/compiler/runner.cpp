#include "compiler/runner.h"

#include "jail/namespace_runner.h"
#include "jail/probe.h"

namespace sandbox::compiler {

std::expected<std::unique_ptr<jail::ProcessRunner>, core::Error>
make_runner(core::IsolationMode mode)
{
  switch (mode) {
  case core::IsolationMode::process_group:
    return std::make_unique<jail::GroupRunner>();
  case core::IsolationMode::jail:
    if (!jail::jail_supported()) {
      std::string missing;
      for (const auto& probe : jail::probe_isolation()) {
        if (!probe.works && (probe.name == "user_ns" || probe.name == "mount_ns" ||
                             probe.name == "pid_ns" || probe.name == "seccomp")) {
          missing += (missing.empty() ? "" : "; ") + probe.name + ": " + probe.detail;
        }
      }
      return std::unexpected(core::JailSetupFailed{
        "probe", "this kernel cannot run the jail (" + missing +
                   "); see `sandbox doctor`, or opt into the weaker mode with "
                   "isolation: process_group"});
    }
    return std::make_unique<jail::NamespaceRunner>();
  }
  return std::make_unique<jail::GroupRunner>();
}

} // namespace sandbox::compiler
