#include "backends/toolchain.h"

#include "backends/diagnostics.h"
#include "util/fs.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <csignal>
#include <cstring>

namespace sandbox::backends {

namespace {

std::string signal_name(int signal)
{
  const char* abbrev = sigabbrev_np(signal);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", signal);
}

} // namespace

std::expected<BackendRun, core::Error> run_source_compiler(const BackendRequest& request,
                                                           jail::ProcessRunner& runner,
                                                           std::vector<std::string> argv,
                                                           std::vector<fs::path> sources,
                                                           bool erlang_output)
{
  for (const auto& source : sources) {
    argv.push_back(as_argument(source));
  }
  auto run = run_job(request, runner, job_spec(request, std::move(argv), {}), erlang_output);
  if (run) {
    run->output_dirs = {request.paths.work_host / "ebin"};
    run->compiled_sources = std::move(sources);
  }
  return run;
}

std::vector<std::string> job_environment(const BackendRequest& request,
                                         const std::map<std::string, std::string>& extra)
{
  std::map<std::string, std::string> env;
  auto tools = require_toolchain(request);
  env["PATH"] = tools ? (*tools)->path_env : "/usr/bin:/bin";
  env["HOME"] = (request.paths.work_job / "home").string();
  env["TMPDIR"] = (request.paths.work_job / "tmp").string();
  env["LANG"] = "C.UTF-8";
  for (const auto& [key, value] : extra) {
    env[key] = value;
  }
  if (request.options != nullptr) {
    for (const auto& [key, value] : request.options->env) {
      if (!core::is_reserved_env_name(key)) {
        env[key] = value;
      }
    }
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [key, value] : env) {
    out.push_back(key + "=" + value);
  }
  return out;
}

jail::Limits job_limits(const core::CompileOptions& options)
{
  jail::Limits limits;
  limits.wall_timeout_ms = options.timeout_ms;
  limits.memory_bytes = options.memory_limit;
  limits.cpu_percent = options.cpu_limit;
  limits.max_processes = options.max_processes;
  limits.output_cap_bytes = options.output_limit;
  return limits;
}

jail::ProcessSpec job_spec(const BackendRequest& request, std::vector<std::string> argv,
                           const std::map<std::string, std::string>& extra_env)
{
  jail::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.env = job_environment(request, extra_env);
  spec.cwd = request.paths.sandbox_job;
  spec.binds.push_back({request.paths.sandbox_host, request.paths.sandbox_job, false});
  spec.binds.push_back({request.paths.work_host, request.paths.work_job, true});
  if (request.options != nullptr) {
    spec.limits = job_limits(*request.options);
  }
  if (auto tools = require_toolchain(request); tools) {
    spec.toolchain_paths = (*tools)->jail_paths;
  }
  return spec;
}

std::expected<BackendRun, core::Error> run_job(const BackendRequest& request,
                                               jail::ProcessRunner& runner,
                                               const jail::ProcessSpec& spec, bool erlang_output)
{
  auto result = runner.run(spec);
  PathContext paths;
  paths.sandbox_root = request.paths.sandbox_host;
  if (request.paths.sandbox_job != request.paths.sandbox_host) {
    paths.aliases.push_back(request.paths.sandbox_job);
  }
  BackendRun run;
  run.output = std::move(result.output);
  run.diagnostics = erlang_output ? parse_erlc_output(run.output, paths)
                                  : parse_elixir_output(run.output, paths);
  run.usage = result.usage;
  run.monitor_warnings = std::move(result.warnings);
  if (result.succeeded()) {
    return run;
  }
  std::string job = fs::path(spec.argv.empty() ? "" : spec.argv.front()).filename().string();
  bool mix_driver = spec.argv.size() > 2 && spec.argv[2].find("Mix.CLI") != std::string::npos;
  if (job == "mix" || mix_driver) {
    job = "mix compile";
  } else if (!request.source_files.empty()) {
    job += fmt::format(" of {}{}", request.source_files.front().string(),
                       request.source_files.size() > 1
                         ? fmt::format(" and {} more files", request.source_files.size() - 1)
                         : std::string());
  }
  return std::unexpected(verdict_error(result, spec.limits, std::move(run.output),
                                       std::move(run.diagnostics), job));
}

std::string describe_job(std::string_view job, std::string_view output)
{
  std::string_view progress;
  std::size_t start = 0;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string_view::npos) {
      end = output.size();
    }
    auto line = output.substr(start, end - start);
    if (line.starts_with("Compiling ") || line.starts_with("==> ")) {
      progress = line.substr(0, 200);
    }
    start = end + 1;
  }
  std::string text(job);
  if (!progress.empty()) {
    text += text.empty() ? std::string(progress) : " (" + std::string(progress) + ")";
  }
  return text;
}

namespace {

std::string megabytes(double bytes)
{
  return fmt::format("{:.0f} MiB", bytes / (1024.0 * 1024.0));
}

core::ResourceLimitExceeded limit_error(core::LimitType type, double current, double limit,
                                        std::string_view job, std::string_view output)
{
  core::ResourceLimitExceeded error{type, current, limit, describe_job(job, output), {}};
  switch (type) {
  case core::LimitType::memory_limit:
    error.hint = fmt::format("the job needed more than its {} of memory; raise the limit with "
                             "--memory-limit {}M (option memory_limit, in bytes)",
                             megabytes(limit), static_cast<long long>(limit / (512.0 * 1024.0)));
    break;
  case core::LimitType::max_processes:
    error.hint = fmt::format("the job reached {} processes and threads; raise the limit with "
                             "--max-processes {} (option max_processes)",
                             static_cast<long long>(limit), static_cast<long long>(limit * 2));
    break;
  case core::LimitType::cpu_limit:
    error.hint = "the job used all the CPU time it was given; give it more with --timeout "
                 "(option timeout) or a higher --cpu-limit";
    break;
  }
  return error;
}

} // namespace

core::Error verdict_error(const jail::ProcessResult& result, const jail::Limits& limits,
                          std::string output, std::vector<core::Diagnostic> diagnostics,
                          std::string_view job)
{
  switch (result.verdict) {
  case jail::Verdict::exited:
    return core::CompilationFailed{result.exit_code, std::move(output), std::move(diagnostics)};
  case jail::Verdict::signaled:
    return core::CompilerCrash{"signal",
                               fmt::format("compiler killed by {}", signal_name(result.signal)),
                               {{"signal", result.signal}, {"output", output}}};
  case jail::Verdict::seccomp_violation:
    return core::CompilerCrash{"seccomp_violation",
                               "the compiler made a forbidden system call and was killed",
                               {{"signal", result.signal}, {"output", output}}};
  case jail::Verdict::wall_timeout:
    return core::CompilationTimeout{limits.wall_timeout_ms};
  case jail::Verdict::cpu_time_limit:
    return limit_error(core::LimitType::cpu_limit, static_cast<double>(result.usage.cpu_time_ms),
                       static_cast<double>(limits.cpu_time_ms), job, output);
  case jail::Verdict::memory_limit:
    return limit_error(core::LimitType::memory_limit,
                       result.limit_reading > 0
                         ? result.limit_reading
                         : static_cast<double>(result.usage.peak_memory_bytes),
                       static_cast<double>(limits.memory_bytes), job, output);
  case jail::Verdict::process_limit:
    return limit_error(core::LimitType::max_processes, result.limit_reading,
                       static_cast<double>(limits.max_processes), job, output);
  case jail::Verdict::output_limit:
    return core::OutputLimitExceeded{limits.output_cap_bytes};
  case jail::Verdict::setup_failure:
    return core::JailSetupFailed{result.setup_stage, result.setup_error};
  }
  return core::JailSetupFailed{"verdict", "unknown verdict"};
}

} // namespace sandbox::backends
