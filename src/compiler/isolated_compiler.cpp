#include "compiler/isolated_compiler.h"

#include "backends/backend.h"
#include "backends/toolchain.h"
#include "beam/beam.h"
#include "compiler/compile_job.h"
#include "compiler/engine_state.h"
#include "compiler/incremental_compile.h"
#include "compiler/in_process_compiler.h"
#include "compiler/packages.h"
#include "compiler/runner.h"
#include "compiler/sandbox_path.h"
#include "compiler/security_gate.h"
#include "compiler/source_snapshot.h"
#include "util/fs.h"
#include "util/time.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>

namespace sandbox::compiler {

namespace {

// Removes a job's temp dir on every path but success.
class TempDirGuard {
public:
  explicit TempDirGuard(fs::path path) : m_path(std::move(path)) {}
  TempDirGuard(const TempDirGuard&) = delete;
  TempDirGuard& operator=(const TempDirGuard&) = delete;
  ~TempDirGuard()
  {
    if (!m_path.empty()) {
      (void)util::remove_tree(m_path);
    }
  }
  void release() { m_path.clear(); }

private:
  fs::path m_path;
};

bool given(const core::CompileOptions& options, std::string_view name)
{
  return std::find(options.given.begin(), options.given.end(), name) != options.given.end();
}

std::vector<UnenforcedOption> unenforced_options(const core::CompileOptions& options,
                                                 const jail::Isolation& isolation)
{
  std::vector<UnenforcedOption> out;
  auto enforced = [&](std::string_view limit) {
    return std::find(isolation.enforced_limits.begin(), isolation.enforced_limits.end(), limit) !=
           isolation.enforced_limits.end();
  };
  for (const char* limit : {"memory_limit", "cpu_limit", "max_processes"}) {
    if (!enforced(limit)) {
      out.push_back({limit, fmt::format("not enforced by the {} runner", isolation.mode)});
    }
  }
  if (given(options, "worker_reuse") && options.compiler != core::Backend::in_process) {
    out.push_back({"worker_reuse", "applies to the warm workers only (compiler: in_process)"});
  }
  if (!options.incremental) {
    for (const char* name : {"force_recompile", "skip_cache", "dependency_analysis"}) {
      if (given(options, name)) {
        out.push_back({name, "applies to incremental compiles only (incremental: true)"});
      }
    }
  }
  return out;
}

std::expected<void, std::string> make_work_dirs(const fs::path& work)
{
  for (const char* sub : {"", "home", "tmp", "ebin"}) {
    std::error_code ec;
    fs::create_directories(work / sub, ec);
    if (ec) {
      return std::unexpected("cannot create " + (work / sub).string() + ": " + ec.message());
    }
  }
  return {};
}


// Copies one application's .beam and .app files into <temp>/lib/APP/ebin,
// checking each BEAM.
std::expected<fs::path, core::Error> copy_ebin(const fs::path& from, const fs::path& temp,
                                               const std::string& app,
                                               const core::CompileOptions& options)
{
  auto target = temp / "lib" / app / "ebin";
  std::error_code ec;
  fs::create_directories(target, ec);
  if (ec) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", ec.message()});
  }
  auto tree = util::list_tree(from);
  if (!tree) {
    return target; // the application compiled nothing
  }
  for (const auto& entry : *tree) {
    auto ext = entry.relative.extension();
    if (entry.type != fs::file_type::regular || entry.relative.has_parent_path() ||
        (ext != ".beam" && ext != ".app")) {
      continue;
    }
    auto bytes = util::read_file(from / entry.relative, 64ull << 20);
    if (!bytes) {
      return std::unexpected(core::CompilerCrash{"output", bytes.error(), {}});
    }
    auto file = target / entry.relative;
    if (auto written = util::write_file_atomic(file, *bytes, 0644); !written) {
      return std::unexpected(core::JailSetupFailed{"temp_dir", written.error()});
    }
    if (ext == ".beam" && options.validate_beams) {
      if (auto checked = beam::validate_beam_file(file); !checked) {
        return std::unexpected(core::BeamValidationFailed{app + "/" + entry.relative.string(),
                                                          checked.error().reason});
      }
    }
  }
  return target;
}

// The result's `dependencies`: each application the project depends on,
// with its own ebin under the result's temp dir.
std::expected<std::vector<DependencyInfo>, core::Error>
collect_dependencies(const backends::BackendRun& run, const std::vector<PreparedPackage>& packages,
                     const fs::path& work, const fs::path& temp,
                     const core::CompileOptions& options)
{
  std::vector<DependencyInfo> out;
  for (const auto& package : packages) {
    auto ebin = copy_ebin(package.build / "ebin", temp, package.app, options);
    if (!ebin) {
      return std::unexpected(ebin.error());
    }
    // A package's priv/ (data it reads with :code.priv_dir) beside its ebin.
    std::error_code ec;
    if (fs::is_directory(fs::symlink_status(package.sources / "priv", ec))) {
      if (auto copied = snapshot_tree(package.sources / "priv", temp / "lib" / package.app / "priv");
          !copied) {
        return std::unexpected(core::JailSetupFailed{"temp_dir", copied.error()});
      }
    }
    out.push_back({package.app, package.version, "hex", package.cached, *ebin, package.key});
  }
  for (const auto& dep : run.dependencies) {
    if (dep.kind != "path" && dep.kind != "umbrella") {
      continue;
    }
    // The job left these directories: a link among them is never followed.
    auto built = work;
    bool real = true;
    for (const auto& part : {"build", "lib", dep.app.c_str(), "ebin"}) {
      built /= part;
      std::error_code ec;
      real = real && fs::is_directory(fs::symlink_status(built, ec));
    }
    if (!real) {
      continue;
    }
    auto ebin = copy_ebin(built, temp, dep.app, options);
    if (!ebin) {
      return std::unexpected(ebin.error());
    }
    out.push_back({dep.app, backends::app_version(built / (dep.app + ".app")), dep.kind, false, *ebin, {}});
  }
  return out;
}

} // namespace

CompileResult compile_sandbox(const std::string& path, const core::CompileOptions& options)
{
  if (options.incremental && options.cache_enabled) {
    return incremental_compile_sandbox(path, {}, options);
  }
  return compile_job(path, options, {});
}

CompileResult compile_job(const std::string& path, const core::CompileOptions& options,
                          const JobHooks& hooks)
{
  util::Stopwatch clock;
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto sources = resolve_source_files(*sandbox, options.source_files);
  if (!sources) {
    return std::unexpected(sources.error());
  }
  auto tools = backends::resolve_toolchain(options.toolchain);
  if (!tools) {
    return std::unexpected(tools.error());
  }
  auto scanned = security_gate_before(*sandbox, *sources, options);
  if (!scanned) {
    return std::unexpected(scanned.error());
  }
  if (options.compiler == core::Backend::in_process) {
    auto info = compile_sandbox_in_process(*sandbox, *sources, options, hooks.prior_beams);
    if (!info) {
      return info;
    }
    info->toolchain = *tools;
    auto audited = security_gate_after(info->beam_files, options);
    if (!audited) {
      (void)util::remove_tree(info->temp_dir);
      return std::unexpected(audited.error());
    }
    info->unenforced_options = unenforced_options(options, info->isolation);
    info->security_warnings = std::move(*scanned);
    info->security_warnings.insert(info->security_warnings.end(), audited->begin(), audited->end());
    info->compilation_time_ms = clock.elapsed_ms();
    return info;
  }
  auto runner = make_runner(options.isolation);
  if (!runner) {
    return std::unexpected(runner.error());
  }

  // The key belongs to the engine's state, not to the caller's temp_dir.
  if (auto key = engine_key(); !key) {
    return std::unexpected(core::JailSetupFailed{"engine_state", key.error()});
  }
  auto parent = options.temp_dir.value_or(util::default_temp_root());
  auto temp = create_marked_temp_dir(parent);
  if (!temp) {
    if (options.temp_dir) {
      return std::unexpected(core::InvalidOption{"temp_dir", temp.error()});
    }
    return std::unexpected(core::JailSetupFailed{"temp_dir", temp.error()});
  }
  TempDirGuard guard(*temp);
  auto work = *temp / "work";
  if (auto made = make_work_dirs(work); !made) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", made.error()});
  }

  // A jailed job runs as an unprivileged uid when the engine is root: give it
  // a readable copy of a private sandbox rather than failing.
  fs::path job_source = *sandbox;
  if ((*runner)->remaps_paths() && ::geteuid() == 0 && !readable_by_others(*sandbox)) {
    job_source = *temp / "source";
    if (auto copied = snapshot_tree(*sandbox, job_source); !copied) {
      return std::unexpected(core::InvalidSandboxPath{path, copied.error()});
    }
  }

  backends::BackendRequest request;
  request.paths = backends::make_job_paths(job_source, work, **runner);
  if (!hooks.prior_beams.empty()) {
    if (auto placed = place_prior_beams(work / "prior", hooks.prior_beams); !placed) {
      return std::unexpected(core::JailSetupFailed{"temp_dir", placed.error()});
    }
    request.prior_code_path = request.paths.work_in_job(work / "prior");
  }
  request.options = &options;
  request.toolchain = *tools;
  request.source_files = std::move(*sources);
  auto backend = backends::make_backend(options.compiler);
  PreparedPackages packages;
  auto provide = [&](const PreparedPackages& prepared) -> std::expected<void, core::Error> {
    if (auto placed = place_packages(prepared.packages, work); !placed) {
      return std::unexpected(core::JailSetupFailed{"packages", placed.error()});
    }
    request.provided_packages.emplace();
    for (const auto& package : prepared.packages) {
      request.provided_packages->push_back(package.app);
    }
    return {};
  };
  // While the project's job waits, packages the engine already has (verified
  // and built) are placed and the project compiles in the same run; anything
  // to fetch or build stops it, and is done below, on this thread.
  request.provide_packages = [&](const std::vector<backends::DeclaredDependency>& declared)
    -> std::optional<std::vector<std::string>> {
    auto prepared = prepare_packages(job_source, declared, options, **runner, false);
    bool placed = prepared && prepared->complete && !prepared->packages.empty() &&
                  place_packages_live(prepared->packages, work, *temp / "staging");
    (void)util::remove_tree(*temp / "staging");
    if (!placed) {
      return std::nullopt;
    }
    std::vector<std::string> names;
    for (const auto& package : prepared->packages) {
      names.push_back(package.app);
    }
    packages = std::move(*prepared);
    return names;
  };
  auto run = backend->compile(request, **runner);
  if (!run) {
    return std::unexpected(run.error());
  }
  // A Mix project with Hex dependencies: Mix said which; the engine prepares
  // them (docs/dependencies.md) and the project compiles with them in place.
  if (run->needs_packages) {
    auto prepared = prepare_packages(job_source, run->dependencies, options, **runner);
    if (!prepared) {
      return std::unexpected(prepared.error());
    }
    packages = std::move(*prepared);
    if (auto provided = provide(packages); !provided) {
      return std::unexpected(provided.error());
    }
    request.provide_packages = nullptr;
    auto usage = run->usage;
    run = backend->compile(request, **runner);
    if (!run) {
      return std::unexpected(run.error());
    }
    run->usage.cpu_time_ms += usage.cpu_time_ms;
    if (run->needs_packages) {
      return std::unexpected(core::CompilerCrash{
        "mix", "Mix asked again for packages the engine had placed", {{"output", run->output}}});
    }
  }

  auto out_dir = *temp / "ebin";
  auto collected = collect_outputs(work, run->output_dirs, out_dir);
  if (!collected) {
    return std::unexpected(core::CompilerCrash{"output", collected.error(), {}});
  }

  CompileInfo info;
  for (const auto& beam_file : collected->beam_files) {
    if (options.validate_beams) {
      auto checked = beam::validate_beam_file(beam_file);
      if (!checked) {
        return std::unexpected(
          core::BeamValidationFailed{beam_file.filename().string(), checked.error().reason});
      }
      info.modules.push_back(checked->module);
    } else {
      info.modules.push_back(beam_file.stem().string());
    }
  }
  auto audited = security_gate_after(collected->beam_files, options, collected->app_files);
  if (!audited) {
    return std::unexpected(audited.error());
  }
  if (run->app_name) {
    auto app = out_dir / (*run->app_name + ".app");
    if (std::find(collected->app_files.begin(), collected->app_files.end(), app) !=
        collected->app_files.end()) {
      info.app_file = app;
    }
  }
  auto dependencies = collect_dependencies(*run, packages.packages, work, *temp, options);
  if (!dependencies) {
    return std::unexpected(dependencies.error());
  }
  info.dependencies = std::move(*dependencies);
  // The job's work directory was writable by code the sandbox controls; only
  // the checked copies are handed to the caller.
  (void)util::remove_tree(work);
  if (job_source != *sandbox) {
    (void)util::remove_tree(job_source);
  }

  info.beam_files = std::move(collected->beam_files);
  info.app_files = std::move(collected->app_files);
  info.temp_dir = *temp;
  info.output = std::move(run->output);
  for (auto& diagnostic : run->diagnostics) {
    if (diagnostic.severity == core::Severity::warning) {
      info.warnings.push_back(std::move(diagnostic));
    }
  }
  for (const auto& source : run->compiled_sources) {
    info.changed_files.push_back(source.string());
  }
  info.original_changed_files = info.changed_files;
  info.references = std::move(run->references);
  info.compiler = std::string(core::to_string(options.compiler));
  info.toolchain = *tools;
  info.resource_usage = run->usage;
  info.isolation = (*runner)->isolation();
  info.monitor_warnings = std::move(run->monitor_warnings);
  info.suspicious_artifacts = std::move(collected->findings);
  info.unenforced_options = unenforced_options(options, info.isolation);
  info.security_warnings = std::move(*scanned);
  info.security_warnings.insert(info.security_warnings.end(), packages.warnings.begin(),
                                packages.warnings.end());
  info.security_warnings.insert(info.security_warnings.end(), audited->begin(), audited->end());
  info.compilation_time_ms = clock.elapsed_ms();
  guard.release();
  return info;
}

nlohmann::json dependencies_record(const std::vector<DependencyInfo>& dependencies,
                                   const fs::path& temp_dir)
{
  auto out = nlohmann::json::array();
  for (const auto& dep : dependencies) {
    nlohmann::json item = {{"name", dep.name}, {"version", dep.version}, {"source", dep.source}};
    if (dep.source == "hex") {
      item["key"] = dep.store_key;
    } else {
      auto files = nlohmann::json::array();
      std::error_code ec;
      for (auto it = fs::directory_iterator(temp_dir / "lib" / dep.name / "ebin", ec);
           !ec && it != fs::directory_iterator(); it.increment(ec)) {
        files.push_back(it->path().filename().string());
      }
      item["files"] = files;
    }
    out.push_back(item);
  }
  return out;
}

std::optional<std::vector<DependencyInfo>> restore_dependencies(const nlohmann::json& record,
                                                                const fs::path& temp_dir,
                                                                const core::CompileOptions& options)
{
  std::vector<DependencyInfo> out;
  if (!record.is_array()) {
    return std::nullopt;
  }
  auto plain_name = [](const std::string& name) {
    return !name.empty() && name.size() < 256 && name.find('/') == std::string::npos &&
           name != "." && name != "..";
  };
  try {
    for (const auto& item : record) {
      DependencyInfo dep;
      dep.name = item.at("name").get<std::string>();
      dep.version = item.at("version").get<std::string>();
      dep.source = item.at("source").get<std::string>();
      if (!plain_name(dep.name)) {
        return std::nullopt;
      }
      if (dep.source == "hex") {
        dep.store_key = item.at("key").get<std::string>();
        if (dep.store_key.size() != 64 ||
            dep.store_key.find_first_not_of("0123456789abcdef") != std::string::npos) {
          return std::nullopt;
        }
        auto build = packages_root() / "builds" / dep.store_key;
        std::error_code ec;
        if (!fs::is_directory(fs::symlink_status(build / "ebin", ec))) {
          return std::nullopt;
        }
        auto ebin = copy_ebin(build / "ebin", temp_dir, dep.name, options);
        if (!ebin) {
          return std::nullopt;
        }
        dep.cached = true;
        dep.ebin = *ebin;
      } else {
        dep.ebin = temp_dir / "lib" / dep.name / "ebin";
        std::error_code ec;
        fs::create_directories(dep.ebin, ec);
        for (const auto& file : item.at("files")) {
          auto name = file.get<std::string>();
          if (!plain_name(name)) {
            return std::nullopt;
          }
          fs::copy_file(temp_dir / "ebin" / name, dep.ebin / name, ec);
          if (ec && fs::path(name).extension() == ".beam") {
            return std::nullopt;
          }
        }
      }
      out.push_back(std::move(dep));
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return out;
}

CompileResult compile_file(const std::string& file, const core::CompileOptions& options)
{
  std::error_code ec;
  auto resolved = fs::canonical(fs::absolute(file, ec), ec);
  if (ec || !fs::is_regular_file(resolved, ec)) {
    return std::unexpected(core::InvalidSandboxPath{file, "is not an existing regular file"});
  }
  auto ext = resolved.extension();
  core::Backend backend;
  if (ext == ".ex" || ext == ".exs") {
    backend = core::Backend::elixirc;
  } else if (ext == ".erl") {
    backend = core::Backend::erlc;
  } else {
    return std::unexpected(core::InvalidSandboxPath{file, "expected an .ex, .exs or .erl file"});
  }
  if (given(options, "compiler") && options.compiler != backend) {
    return std::unexpected(core::InvalidOption{
      "compiler", fmt::format("{} files are compiled with {}", ext.string(), core::to_string(backend))});
  }
  auto single = options;
  single.compiler = backend;
  single.source_files = {resolved.filename().string()};
  return compile_sandbox(resolved.parent_path().string(), single);
}

std::expected<void, core::Error> validate_beam_files(const std::vector<fs::path>& files)
{
  for (const auto& file : files) {
    auto checked = beam::validate_beam_file(file);
    if (!checked) {
      return std::unexpected(core::BeamValidationFailed{file.string(), checked.error().reason});
    }
  }
  return {};
}

std::expected<void, core::Error> validate_compilation(const CompileInfo& info)
{
  return validate_beam_files(info.beam_files);
}

std::expected<void, core::Error> cleanup_temp_artifacts(const fs::path& temp_dir)
{
  auto verified = verify_temp_dir_marker(temp_dir);
  if (!verified) {
    return std::unexpected(core::InvalidSandboxPath{temp_dir.string(), verified.error()});
  }
  // The marker verified for the name itself (never through a link), so the
  // resolved path is that directory.
  std::error_code ec;
  auto resolved = fs::canonical(temp_dir, ec);
  if (ec) {
    return std::unexpected(core::InvalidSandboxPath{temp_dir.string(), ec.message()});
  }
  if (auto removed = util::remove_tree(resolved); !removed) {
    return std::unexpected(core::InvalidSandboxPath{temp_dir.string(), removed.error()});
  }
  return {};
}

} // namespace sandbox::compiler
