// erlc: src/**/*.erl and *.erl at the sandbox root into <work>/ebin, with
// include/ on the include path.

#include "backends/backend.h"
#include "backends/toolchain.h"

namespace sandbox::backends {

namespace {

class ErlcBackend final : public CompilerBackend {
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
      for (auto [dir, recursive] : {std::pair{fs::path("src"), true}, std::pair{fs::path("."), false}}) {
        auto found = find_sources(request.paths.sandbox_host, dir, ".erl", recursive);
        if (!found) {
          return std::unexpected(
            core::InvalidSandboxPath{request.paths.sandbox_host, found.error()});
        }
        sources.insert(sources.end(), found->begin(), found->end());
      }
    }
    if (sources.empty()) {
      return std::unexpected(core::InvalidSandboxPath{
        request.paths.sandbox_host.string(), "no Erlang sources to compile (src/**/*.erl, *.erl)"});
    }
    auto ebin = request.paths.work_in_job(request.paths.work_host / "ebin");
    std::vector<std::string> argv = {(*tools)->erlc.string(), "-o", ebin.string(), "+debug_info"};
    for (const char* include : {"include", "src"}) {
      std::error_code ec;
      if (fs::is_directory(fs::symlink_status(request.paths.sandbox_host / include, ec))) {
        argv.emplace_back("-I");
        argv.emplace_back(include);
      }
    }
    return run_source_compiler(request, runner, std::move(argv), std::move(sources), true);
  }
};

} // namespace

std::unique_ptr<CompilerBackend> make_erlc_backend()
{
  return std::make_unique<ErlcBackend>();
}

} // namespace sandbox::backends
