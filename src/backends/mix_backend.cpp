// mix: `mix compile` of a Mix project, with build path, deps path, HOME and
// TMPDIR inside the job's work directory. A small Mix task run in the same VM
// registers an SCM for Hex-style declarations (the engine, never the jail,
// fetches and verifies packages: docs/dependencies.md), reports the
// project's application (or an umbrella's applications) and its resolved
// dependencies, and stops before compiling when it needs packages the engine
// has not provided yet. Nothing is scraped from mix.exs with a pattern.

#include "backends/backend.h"
#include "backends/toolchain.h"
#include "util/fs.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <sstream>

namespace sandbox::backends {

namespace {

// Runs inside `elixir -e`. Writes "app NAME", "umbrella_app NAME", "dep APP
// KIND PACKAGE" and "need_packages" lines to $SANDBOX_REPORT, then hands over
// to Mix's own compile task (or, for the engine's per-package build, to
// deps.loadpaths, which compiles the dependencies only). $SANDBOX_PACKAGES
// names the packages the engine placed; a Hex dependency not among them stops
// the run before anything compiles.
constexpr const char* kMixDriver = R"ELIXIR(
defmodule Sandbox.PackageSCM do
  @behaviour Mix.SCM
  @moduledoc false
  # Hex-style declarations ({:jason, "~> 1.4"}, hex: :name, only:, optional:)
  # are served from deps/APP, where the engine put the verified package.
  def fetchable?, do: true
  def format(opts), do: "package #{opts[:hex]}"
  def format_lock(_opts), do: nil

  def accepts_options(app, opts) do
    if Enum.any?([:path, :git, :github, :in_umbrella], &Keyword.has_key?(opts, &1)) do
      nil
    else
      Keyword.update(opts, :hex, Atom.to_string(app), &to_string/1)
    end
  end

  def checked_out?(opts), do: File.dir?(opts[:dest])
  def lock_status(_opts), do: :ok
  def equal?(a, b), do: a[:hex] == b[:hex]
  def managers(_opts), do: []

  def checkout(opts) do
    Mix.raise("package #{opts[:hex]} comes from the engine's package mirror; nothing is fetched here")
  end

  def update(opts), do: checkout(opts)
end

defmodule Mix.Tasks.Sandbox.Compile do
  use Mix.Task
  @moduledoc false

  def run(args) do
    report = System.fetch_env!("SANDBOX_REPORT")
    config = Mix.Project.config()

    apps =
      if Mix.Project.umbrella?() do
        for {app, _} <- Mix.Project.apps_paths() |> Enum.sort(), do: "umbrella_app #{app}\n"
      else
        ["app #{config[:app]}\n"]
      end

    deps = Mix.Dep.load_and_cache()
    lines = apps ++ Enum.map(deps, &dep_line/1)
    provided = String.split(System.get_env("SANDBOX_PACKAGES", ""))
    missing = for %{scm: Sandbox.PackageSCM, app: app} <- deps, "#{app}" not in provided, do: app

    if missing != [] do
      write_report(report, [lines, "need_packages\n"])
      go = System.get_env("SANDBOX_PACKAGES_GO")
      System.delete_env("SANDBOX_PACKAGES_GO")

      case go && wait_for_packages(go) do
        {:go, names} ->
          System.put_env("SANDBOX_PACKAGES", Enum.join(names, " "))
          Mix.Dep.clear_cached()
          run(args)

        _ ->
          System.halt(3)
      end
    else
      write_report(report, lines)
      compile(args)
    end
  end

  # The engine reads the report while this VM waits: it appears whole.
  defp write_report(report, lines) do
    File.write!(report <> ".part", lines)
    File.rename!(report <> ".part", report)
  end

  defp wait_for_packages(path) do
    case File.read(path) do
      {:ok, "go" <> names} -> {:go, String.split(names)}
      {:ok, _} -> :stop
      {:error, _} ->
        Process.sleep(5)
        wait_for_packages(path)
    end
  end

  defp compile(args) do
    if System.get_env("SANDBOX_PACKAGES_ONLY") == "1" do
      Mix.Task.run("deps.loadpaths", args)
    else
      # Consolidated protocols are not part of a result: not made.
      Mix.Task.run("compile", ["--no-protocol-consolidation" | args])
    end
  end

  defp dep_line(%Mix.Dep{app: app, scm: scm, opts: opts}) do
    {kind, package} =
      cond do
        scm == Sandbox.PackageSCM -> {"hex", opts[:hex]}
        scm == Mix.SCM.Path and (opts[:in_umbrella] || opts[:from_umbrella]) -> {"umbrella", app}
        scm == Mix.SCM.Path -> {"path", app}
        scm == Mix.SCM.Git -> {"git", app}
        true -> {"other", app}
      end

    "dep #{app} #{kind} #{package}\n"
  end
end

# Mix 1.18 tells other OS processes about compiles over a loopback TCP
# socket; a job is alone in its build directory and has no network, so the
# notifier is replaced by one that tells no one.
if :code.which(Mix.Sync.PubSub) != :non_existing do
  Code.compiler_options(ignore_module_conflict: true)

  defmodule Mix.Sync.PubSub do
    @moduledoc false
    use GenServer
    def start_link(_opts), do: GenServer.start_link(__MODULE__, {}, name: __MODULE__)
    def subscribe(_key), do: :ok
    def broadcast(_key, _message), do: :ok
    @impl true
    def init({}), do: {:ok, %{}}
  end

  Code.compiler_options(ignore_module_conflict: false)
end

Mix.start()
Mix.SCM.append(Sandbox.PackageSCM)
Mix.CLI.main(["sandbox.compile" | System.argv()])
)ELIXIR";

struct MixReport {
  std::optional<std::string> app;
  std::vector<std::string> umbrella_apps;
  std::vector<DeclaredDependency> dependencies;
  bool needs_packages = false;
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
    if (line == "need_packages") {
      report.needs_packages = true;
      continue;
    }
    auto space = line.find(' ');
    if (space == std::string::npos) {
      continue;
    }
    auto key = line.substr(0, space);
    auto value = line.substr(space + 1);
    if (key == "app" && valid_app_name(value)) {
      report.app = value;
    } else if (key == "umbrella_app" && valid_app_name(value) &&
               report.umbrella_apps.size() < 1000) {
      report.umbrella_apps.push_back(value);
    } else if (key == "dep" && report.dependencies.size() < 1000) {
      std::istringstream fields(value);
      DeclaredDependency dep;
      fields >> dep.app >> dep.kind >> dep.package;
      static const std::array<std::string_view, 5> kinds = {"hex", "path", "umbrella", "git",
                                                            "other"};
      // A Hex package name follows the application name's rules.
      if (valid_app_name(dep.app) && valid_app_name(dep.package) &&
          std::find(kinds.begin(), kinds.end(), dep.kind) != kinds.end()) {
        report.dependencies.push_back(std::move(dep));
      }
    }
  }
  return report;
}

class MixBackend final : public CompilerBackend {
public:
  std::expected<BackendRun, core::Error> compile(const BackendRequest& request,
                                                 jail::ProcessRunner& runner) const override
  {
    auto tools = require_toolchain(request);
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
      // Mix 1.16+ locks the build directory across OS processes over a
      // loopback socket; each job has a build directory of its own.
      {"MIX_OS_CONCURRENCY_LOCK", "0"},
      {"SANDBOX_REPORT", in_job(report_path)},
    };
    if (request.provided_packages) {
      std::string names;
      for (const auto& name : *request.provided_packages) {
        names += (names.empty() ? "" : " ") + name;
      }
      mix_env["SANDBOX_PACKAGES"] = names;
    }
    if (request.packages_only) {
      mix_env["SANDBOX_PACKAGES_ONLY"] = "1";
    }
    std::vector<std::string> argv = {(*tools)->elixir.string(), "-e", kMixDriver};
    auto go_path = paths.work_host / "packages_go";
    bool waits = request.provide_packages && !request.provided_packages;
    if (waits) {
      mix_env["SANDBOX_PACKAGES_GO"] = in_job(go_path);
    }
    // While the job runs, a watcher answers its request for packages: the
    // project then compiles in the same VM instead of a second one.
    std::optional<std::vector<std::string>> provided_by_watcher;
    std::atomic<bool> finished{false};
    std::thread watcher;
    if (waits) {
      watcher = std::thread([&] {
        while (!finished.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          auto pending = read_report(report_path);
          if (!pending.needs_packages) {
            continue;
          }
          try {
            provided_by_watcher = request.provide_packages(pending.dependencies);
          } catch (...) {
            provided_by_watcher.reset(); // the job stops; the caller prepares them again
          }
          std::string answer = "stop\n";
          if (provided_by_watcher) {
            answer = "go";
            for (const auto& name : *provided_by_watcher) {
              answer += " " + name;
            }
            answer += "\n";
          }
          (void)util::write_file_atomic(go_path, answer, 0644);
          return;
        }
      });
    }
    auto run = run_job(request, runner, job_spec(request, std::move(argv), mix_env), false);
    finished.store(true);
    if (watcher.joinable()) {
      watcher.join();
    }
    auto report = read_report(report_path);
    std::vector<std::string> unfetchable;
    for (const auto& dep : report.dependencies) {
      if (dep.kind == "git" || dep.kind == "other") {
        unfetchable.push_back(dep.app);
      }
    }
    if (!unfetchable.empty()) {
      return std::unexpected(core::DependenciesUnavailable{
        unfetchable, "git and other SCM dependencies cannot be fetched by a sandboxed compile; "
                     "publish them to the package mirror or vendor them as path dependencies"});
    }
    if (report.needs_packages) {
      BackendRun pending;
      pending.needs_packages = true;
      pending.dependencies = std::move(report.dependencies);
      pending.app_name = report.app;
      pending.umbrella_apps = std::move(report.umbrella_apps);
      pending.usage = run ? run->usage : jail::ResourceUsage{};
      return pending;
    }
    if (!run) {
      return run;
    }
    if (!report.app && report.umbrella_apps.empty()) {
      return std::unexpected(core::CompilerCrash{
        "mix", "mix finished without reporting the project's application name",
        {{"output", run->output}}});
    }
    run->app_name = report.app ? report.app : std::optional(report.umbrella_apps.front());
    run->umbrella_apps = report.umbrella_apps;
    run->dependencies = std::move(report.dependencies);
    // The project's own applications first, then path dependencies; the
    // provided packages are the engine's, handed over separately.
    auto lib = build / "lib";
    std::vector<std::string> own =
      report.umbrella_apps.empty() ? std::vector<std::string>{*report.app} : report.umbrella_apps;
    for (const auto& app : own) {
      run->output_dirs.push_back(lib / app / "ebin");
    }
    const auto provided = request.provided_packages.value_or(
      provided_by_watcher.value_or(std::vector<std::string>{}));
    run->provided_packages = provided;
    for (auto it = fs::directory_iterator(lib, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      auto name = it->path().filename().string();
      std::error_code st_ec;
      auto st = fs::symlink_status(it->path(), st_ec);
      if (!st_ec && fs::is_directory(st) && std::find(own.begin(), own.end(), name) == own.end() &&
          std::find(provided.begin(), provided.end(), name) == provided.end()) {
        run->output_dirs.push_back(it->path() / "ebin");
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
