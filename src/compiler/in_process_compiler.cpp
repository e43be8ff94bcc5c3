// Placeholder until the worker pool lands: every entry point reports that the
// in_process backend is unavailable in this build.
#include "compiler/in_process_compiler.h"

namespace sandbox::compiler {

namespace {
core::Error unavailable()
{
  return core::InvalidOption{"compiler", "the in_process backend (warm worker pool) is not available in this build"};
}
} // namespace

InProcessResult compile_in_process(const fs::path&, const fs::path&, const InProcessOptions&)
{
  return std::unexpected(unavailable());
}

InProcessResult compile_string(std::string_view, std::string_view, const std::optional<fs::path>&,
                               const core::CompileOptions&)
{
  return std::unexpected(unavailable());
}

std::expected<std::vector<LoadedModule>, core::Error> load_beam_files(const std::vector<fs::path>&)
{
  return std::unexpected(unavailable());
}

void configure_worker_pool(const WorkerPoolSettings&) {}
void shutdown_worker_pool() {}

nlohmann::json to_json(const InProcessResult& result)
{
  if (!result) {
    return {{"ok", false}, {"error", core::to_json(result.error())}};
  }
  return {{"ok", true}};
}

} // namespace sandbox::compiler
