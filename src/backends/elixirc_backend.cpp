// elixirc: lib/**/*.ex (or the given source_files) into <work>/ebin.

#include "backends/backend.h"
#include "backends/toolchain.h"

#include <fmt/format.h>

namespace sandbox::backends {

namespace {

class ElixircBackend final : public CompilerBackend {
public:
  std::expected<BackendRun, core::Error> compile(const BackendRequest& request,
                                                 jail::ProcessRunner& runner) const override
  {
    auto tools = require_toolchain(request);
    if (!tools) {
      return std::unexpected(tools.error());
    }
    auto sources = request.source_files;
    if (sources.empty()) {
      auto found = find_sources(request.paths.sandbox_host, "lib", ".ex", true);
      if (!found) {
        return std::unexpected(core::InvalidSandboxPath{request.paths.sandbox_host, found.error()});
      }
      sources = std::move(*found);
    }
    if (sources.empty()) {
      return std::unexpected(core::InvalidSandboxPath{
        request.paths.sandbox_host.string(), "no Elixir sources to compile (lib/**/*.ex)"});
    }
    auto ebin = request.paths.work_in_job(request.paths.work_host / "ebin");
    std::vector<std::string> argv = {(*tools)->elixirc.string(), "-o", ebin.string()};
    if (request.prior_code_path) {
      argv.insert(argv.end(), {"-pa", request.prior_code_path->string()});
    }
    return run_source_compiler(request, runner, std::move(argv), std::move(sources), false);
  }
};

} // namespace

std::unique_ptr<CompilerBackend> make_elixirc_backend()
{
  return std::make_unique<ElixircBackend>();
}

} // namespace sandbox::backends
