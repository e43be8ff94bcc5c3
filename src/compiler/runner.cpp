#include "compiler/runner.h"

namespace sandbox::compiler {

std::expected<std::unique_ptr<jail::ProcessRunner>, core::Error>
make_runner(core::IsolationMode mode)
{
  switch (mode) {
  case core::IsolationMode::jail:
  case core::IsolationMode::process_group:
    return std::make_unique<jail::GroupRunner>();
  }
  return std::make_unique<jail::GroupRunner>();
}

} // namespace sandbox::compiler
