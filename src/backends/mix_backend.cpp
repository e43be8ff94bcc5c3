// mix: `mix compile` of a Mix project, with build path, deps path, HOME and
// TMPDIR inside the job's work directory. A small Mix task run in the same VM
// asks Mix for the application name and refuses Hex dependencies up front
// (no package registry is reachable from a compile), so nothing is scraped
// from mix.exs with a pattern.

#include "backends/backend.h"
#include "backends/toolchain.h"
#include "util/fs.h"

#include <fmt/format.h>

#include <sstream>

namespace sandbox::backends {

namespace {

// Runs inside `elixir -e`. Writes "app NAME" or "missing_dep NAME" lines to
// $SANDBOX_REPORT, then hands over to Mix's own compile task.
constexpr const char* kMixDriver = R"ELIXIR(
defmodule Mix.Tasks.Sandbox.Compile do
  use Mix.Task
  @moduledoc false

  def run(args) do
    report = System.fetch_env!("SANDBOX_REPORT")
    config = Mix.Project.config()
    missing = for dep <- Keyword.get(config, :deps, []), registry_dep?(dep), do: dep_name(dep)

    if missing != [] do
      File.write!(report, Enum.map_join(missing, "", &"missing_dep #{&1}\n"))
      Mix.shell().error(
        "** (Mix) these dependencies need a package registry, which a sandboxed compile " <>
          "cannot reach: " <> Enum.join(missing, ", ")
      )
      System.halt(3)
    end

    File.write!(report, "app #{config[:app]}\n")
    Mix.Task.run("compile", args)
  end

  defp dep_name(dep), do: dep |> elem(0) |> to_string()

  defp registry_dep?(dep) when is_tuple(dep) do
    opts =
      case dep do
        {_, opts} when is_list(opts) -> opts
        {_, _req, opts} when is_list(opts) -> opts
        _ -> []
      end

    not Enum.any?([:path, :git, :github, :in_umbrella], &Keyword.has_key?(opts, &1))
  end

  defp registry_dep?(_), do: false
end

Mix.start()
Mix.CLI.main(["sandbox.compile" | System.argv()])
)ELIXIR";

struct MixReport {
  std::optional<std::string> app;
  std::vector<std::string> missing_deps;
};

bool valid_app_name(std::string_view name)
{
  if (name.empty() || name.size() > 255 || !(std::islower(static_cast<unsigned char>(name[0])))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

// The report is written by code the sandbox controls: read it with a size cap,
// without following links, and accept only well-formed names.
MixReport read_report(const fs::path& path)
{
  MixReport report;
  auto text = util::read_file(path, 64 * 1024);
  if (!text) {
    return report;
  }
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    auto space = line.find(' ');
    if (space == std::string::npos) {
      continue;
    }
    auto key = line.substr(0, space);
    auto value = line.substr(space + 1);
    if (key == "app" && valid_app_name(value)) {
      report.app = value;
    } else if (key == "missing_dep" && report.missing_deps.size() < 1000) {
      report.missing_deps.push_back(value.substr(0, 255));
    }
  }
  return report;
}

class MixBackend final : public CompilerBackend {
public:
  std::expected<BackendRun, core::Error> compile(const BackendRequest& request,
                                                 jail::ProcessRunner& runner) const override
  {
    auto tools = require_toolchain();
    if (!tools) {
      return std::unexpected(tools.error());
    }
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(request.paths.sandbox_host / "mix.exs", ec))) {
      return std::unexpected(core::InvalidSandboxPath{
        request.paths.sandbox_host.string(),
        "no mix.exs: not a Mix project (use compiler elixirc or erlc for plain sources)"});
    }
    const auto& paths = request.paths;
    auto build = paths.work_host / "build";
    auto report_path = paths.work_host / "mix_report";
    auto in_job = [&](const fs::path& host) { return paths.work_in_job(host).string(); };
    std::map<std::string, std::string> mix_env = {
      {"MIX_BUILD_PATH", in_job(build)},
      {"MIX_DEPS_PATH", in_job(paths.work_host / "deps")},
      {"MIX_HOME", in_job(paths.work_host / "mix")},
      {"MIX_ARCHIVES", in_job(paths.work_host / "mix" / "archives")},
      {"MIX_INSTALL_DIR", in_job(paths.work_host / "mix" / "install")},
      {"MIX_INSTALL_FORCE", "false"},
      {"HEX_OFFLINE", "1"},
      {"SANDBOX_REPORT", in_job(report_path)},
    };
    std::vector<std::string> argv = {(*tools)->elixir.string(), "-e", kMixDriver};
    auto run = run_job(request, runner, job_spec(request, std::move(argv), mix_env), false);
    auto report = read_report(report_path);
    if (!report.missing_deps.empty()) {
      return std::unexpected(core::DependenciesUnavailable{
        report.missing_deps,
        "the project declares dependencies from a package registry, which a sandboxed compile "
        "cannot reach; vendor them as path dependencies"});
    }
    if (!run) {
      return run;
    }
    if (!report.app) {
      return std::unexpected(core::CompilerCrash{
        "mix", "mix finished without reporting the project's application name",
        {{"output", run->output}}});
    }
    run->app_name = report.app;
    // The project's own application first, then path dependencies.
    auto lib = build / "lib";
    run->output_dirs.push_back(lib / *report.app / "ebin");
    for (const auto& entry : fs::directory_iterator(lib, ec)) {
      auto st = fs::symlink_status(entry.path(), ec);
      if (!ec && fs::is_directory(st) && entry.path().filename() != *report.app) {
        run->output_dirs.push_back(entry.path() / "ebin");
      }
    }
    return run;
  }
};

} // namespace

std::unique_ptr<CompilerBackend> make_mix_backend()
{
  return std::make_unique<MixBackend>();
}

} // namespace sandbox::backends
