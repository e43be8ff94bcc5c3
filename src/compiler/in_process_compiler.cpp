// The in_process backend on the worker pool. A job gets a worker (prestarted,
// already jailed), a fresh src-N directory in the worker's job directory is
// filled with a snapshot of the sandbox (or the string being compiled), the
// worker compiles it into out-N, and the BEAMs are copied out without
// following links (collect_outputs), validated and named from their contents.

#include "compiler/in_process_compiler.h"

#include "backends/backend.h"
#include "backends/toolchain.h"
#include "beam/beam.h"
#include "compiler/artifacts.h"
#include "compiler/engine_state.h"
#include "compiler/source_mirrors.h"
#include "compiler/source_snapshot.h"
#include "scan/confinement.h"
#include "util/fs.h"
#include "util/time.h"
#include "worker/pool.h"

#include <functional>

namespace sandbox::compiler {

namespace {

using Clock = std::chrono::steady_clock;

std::expected<worker::WorkerProfile, core::Error> profile_for(const core::CompileOptions& limits)
{
  auto tools = backends::resolve_toolchain(limits.toolchain);
  if (!tools) {
    return std::unexpected(tools.error());
  }
  std::map<std::string, std::string> env;
  for (const auto& [key, value] : limits.env) {
    if (!core::is_reserved_env_name(key)) {
      env[key] = value;
    }
  }
  return worker::WorkerProfile{backends::job_limits(limits), worker::default_worker_env(env, *tools),
                               *tools};
}

struct WorkerJob {
  std::string sandbox_key; // the resolved sandbox ("" for strings: never reused)
  // The tree seen as /sandbox with the prior BEAMs (source_mirrors.h), or
  // else what fills the worker's empty sandbox directory (a string).
  fs::path source_root;
  std::function<std::expected<void, std::string>(const fs::path& sandbox_host)> populate;
  std::vector<std::string> files;
  bool debug_info = true;
  bool parallel = true;
  const std::vector<PriorBeam>* prior_beams = nullptr; // put on the code path
  core::WorkerReuse reuse = core::WorkerReuse::confined;
};

// Budgets of the hygiene check: atoms are never collected, so a worker that
// made this many more than its baseline is replaced; memory over its
// baseline (after a collection) likewise.
constexpr long kAtomBudget = 50'000;
constexpr long kMemoryBudget = 64L << 20;
constexpr std::chrono::milliseconds kCheckTimeout{5'000};
constexpr std::size_t kMaxClassifiedBytes = 8u << 20;

// The job's files as the worker will read them, for classify_confinement.
std::expected<std::vector<scan::SourceFile>, std::string> job_sources(const WorkerJob& job,
                                                                      const fs::path& sandbox_host)
{
  std::vector<scan::SourceFile> out;
  std::size_t total = 0;
  for (const auto& file : job.files) {
    auto text = util::read_file(sandbox_host / file, kMaxClassifiedBytes);
    if (!text) {
      return std::unexpected(text.error());
    }
    total += text->size();
    if (total > kMaxClassifiedBytes) {
      return std::unexpected("the sources are too large to classify");
    }
    out.push_back({file, std::move(*text)});
  }
  return out;
}

// After a confined job: the worker's directories emptied, then the hygiene
// check. Returns why the worker may not serve again, or "" when it may.
std::string offer_again(worker::Worker& w, const WorkerOutcome& outcome,
                        std::size_t reuse_limit)
{
  if (!outcome.confined) {
    return "not confined";
  }
  if (w.jobs_served + 1 >= reuse_limit) {
    return "reuse limit reached";
  }
  if (!w.alive()) {
    return "the worker ended";
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(w.job_dir(), ec)) {
    if (entry.path().filename().string().starts_with("out-")) {
      if (auto removed = util::remove_tree(entry.path()); !removed) {
        return "cannot empty the job directory: " + removed.error();
      }
    }
  }
  for (const auto* dir : {&w.sandbox_dir(), &w.prior_dir()}) {
    if (auto emptied = util::empty_directory(*dir); !emptied) {
      return emptied.error();
    }
  }
  if (!w.job_dir_pristine()) {
    return "hygiene: the job directory differs from the baseline";
  }
  auto checked = w.check(kAtomBudget, kMemoryBudget, kCheckTimeout);
  if (!checked) {
    return "hygiene: " + core::describe(checked.error());
  }
  if (!checked->clean) {
    return "hygiene: " + checked->difference;
  }
  return {};
}

// Removes what earlier requests left in a reused worker's directories: the
// sandbox copy, outputs and previous BEAMs.
std::expected<void, std::string> clear_previous_requests(worker::Worker& w)
{
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(w.job_dir(), ec)) {
    if (entry.path().filename().string().starts_with("out-")) {
      (void)util::remove_tree(entry.path());
    }
  }
  for (const auto* dir : {&w.prior_dir(), &w.sandbox_dir()}) {
    if (auto emptied = util::empty_directory(*dir); !emptied) {
      return emptied;
    }
  }
  return {};
}

InProcessResult run_in_worker(const WorkerJob& job, const fs::path& output,
                              const core::CompileOptions& limits)
{
  util::Stopwatch clock;
  auto timeout = std::chrono::milliseconds(std::max<std::int64_t>(limits.timeout_ms, 1));
  auto deadline = Clock::now() + timeout;
  auto profile = profile_for(limits);
  if (!profile) {
    return std::unexpected(profile.error());
  }
  auto& pool = worker::Pool::global();
  auto pool_settings = pool.settings();
  // Hot reload binds a worker to one sandbox (reuse_per_sandbox); otherwise
  // a confined job may leave its worker to the next job of any tenant.
  // worker_reuse never overrides both.
  bool per_sandbox = pool_settings.reuse_per_sandbox && !job.sandbox_key.empty() &&
                     job.reuse != core::WorkerReuse::never;
  auto lease = pool.acquire(*profile, job.sandbox_key, deadline, job.reuse == core::WorkerReuse::never);
  if (!lease) {
    return std::unexpected(lease.error());
  }
  auto& w = lease->worker();
  if (auto cleared = clear_previous_requests(w); !cleared) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", cleared.error()});
  }
  auto id = w.next_request_id();
  auto out_host = w.job_dir() / ("out-" + id);
  static const std::vector<PriorBeam> no_prior;
  const auto& prior = job.prior_beams != nullptr ? *job.prior_beams : no_prior;
  std::optional<LentSources> lent;
  if (!job.source_root.empty()) {
    auto lending = lend_sources(job.sandbox_key, job.source_root, w.sandbox_dir(), w.prior_dir(), prior);
    if (!lending) {
      return std::unexpected(core::InvalidSandboxPath{job.sandbox_key, lending.error()});
    }
    lent.emplace(std::move(*lending));
  } else if (auto filled = job.populate(w.sandbox_dir()); !filled) {
    return std::unexpected(core::InvalidSandboxPath{job.sandbox_key, filled.error()});
  }
  WorkerOutcome outcome;
  outcome.reused = lease->reused();
  if (lent) {
    outcome.sources_lent = true;
    outcome.sources_reused = lent->reused();
    outcome.sources_copied = lent->copied();
  }
  if (auto sources = job_sources(job, w.sandbox_dir()); !sources) {
    outcome.reason = sources.error();
  } else {
    auto verdict = scan::classify_confinement(*sources, w.loaded_modules());
    outcome.confined = verdict.confined;
    outcome.reason = std::move(verdict.reason);
  }

  worker::CompileRequest request;
  request.source_dir = worker::kSandboxInside;
  request.out_dir = std::string(worker::kJobDirInside) + "/out-" + id;
  if (!prior.empty()) {
    request.code_paths.push_back(std::string(worker::kPriorInside) + "/beams");
  }
  request.files = job.files;
  request.debug_info = job.debug_info;
  request.parallel = job.parallel;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto reply = w.compile(request, std::max(left, std::chrono::milliseconds(1)));
  if (lent) {
    lent->give_back(); // the worker is done with the sources: back before it serves anyone else
  }
  if (!reply) {
    return std::unexpected(reply.error());
  }
  if (reply->status == worker::CompileReply::Status::error) {
    std::string text;
    auto diagnostics = reply->errors;
    for (const auto& d : reply->errors) {
      text += d.file + ":" + std::to_string(d.line) + ": error: " + d.message + "\n";
    }
    for (const auto& d : reply->warnings) {
      diagnostics.push_back(d);
    }
    // A compile error is the job's, not the worker's: a reused worker may go on.
    if (per_sandbox) {
      lease->keep();
    } else if (job.reuse == core::WorkerReuse::confined &&
               offer_again(w, outcome, pool_settings.reuse_limit).empty()) {
      lease->recycle();
    }
    return std::unexpected(core::CompilationFailed{1, std::move(text), std::move(diagnostics)});
  }

  std::error_code ec;
  Collected none;
  std::expected<Collected, std::string> collected = none;
  if (fs::is_directory(fs::symlink_status(out_host, ec))) {
    collected = collect_outputs(out_host, {out_host}, output);
  } else {
    fs::create_directories(output, ec); // nothing compiled: an empty output
  }
  if (!collected) {
    return std::unexpected(core::CompilerCrash{"output", collected.error(), {}});
  }
  InProcessInfo info;
  for (const auto& beam_file : collected->beam_files) {
    auto checked = beam::validate_beam_file(beam_file);
    if (!checked) {
      return std::unexpected(
        core::BeamValidationFailed{beam_file.filename().string(), checked.error().reason});
    }
    info.modules.push_back(checked->module);
  }
  info.suspicious_artifacts = std::move(collected->findings);
  info.beam_files = std::move(collected->beam_files);
  info.warnings = std::move(reply->warnings);
  info.references = std::move(reply->references);
  info.compiled_sources = job.files;
  info.reused_worker = lease->reused();
  info.toolchain = profile->toolchain;
  info.worker_id = w.id();
  if (per_sandbox) {
    lease->keep();
    // The worker may stay: leave no sources behind. A single-use worker's
    // whole directory goes with it, in the background.
    (void)clear_previous_requests(w);
    outcome.kept = true;
  } else if (job.reuse == core::WorkerReuse::never) {
    outcome.retired = "worker_reuse is never";
  } else {
    outcome.retired = offer_again(w, outcome, pool_settings.reuse_limit);
    outcome.kept = outcome.retired.empty();
    if (outcome.kept) {
      lease->recycle();
    }
  }
  info.worker = std::move(outcome);
  info.compilation_time_ms = clock.elapsed_ms();
  info.resource_usage.wall_time_ms = info.compilation_time_ms;
  return info;
}

// A file name for compile_string: one plain component ending in .ex or .exs.
bool plain_source_name(std::string_view name)
{
  if (name.empty() || name.size() > 255 || name == "." || name == ".." ||
      name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return false;
  }
  return name.ends_with(".ex") || name.ends_with(".exs");
}

} // namespace

bool prior_beam_name(std::string_view name)
{
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos &&
         !name.starts_with(".") && name.ends_with(".beam");
}

std::expected<void, std::string> place_prior_beams(const fs::path& dir, const std::vector<PriorBeam>& beams)
{
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return std::unexpected("cannot create " + dir.string() + ": " + ec.message());
  }
  for (const auto& beam : beams) {
    if (!prior_beam_name(beam.file_name)) {
      return std::unexpected("bad BEAM name " + beam.file_name);
    }
    if (auto written = util::write_new_file(dir / beam.file_name, beam.bytes, 0644); !written) {
      return std::unexpected(written.error());
    }
  }
  return {};
}

InProcessResult compile_in_process(const fs::path& source, const fs::path& output,
                                   const InProcessOptions& options)
{
  std::error_code ec;
  auto sandbox = fs::canonical(fs::absolute(source, ec), ec);
  if (ec || !fs::is_directory(sandbox, ec)) {
    return std::unexpected(core::InvalidSandboxPath{source.string(), "is not an existing directory"});
  }
  std::vector<fs::path> files;
  if (options.source_files.empty()) {
    // A project's lib/ when there is one, else every .ex under the source
    // directory, leaving out the output directory when it lies inside.
    bool has_lib = fs::is_directory(fs::symlink_status(sandbox / "lib", ec));
    auto found = backends::find_sources(sandbox, has_lib ? "lib" : ".", ".ex", true);
    if (!found) {
      return std::unexpected(core::InvalidSandboxPath{sandbox.string(), found.error()});
    }
    auto out_resolved = fs::weakly_canonical(fs::absolute(output, ec), ec);
    for (auto& file : *found) {
      if (!ec && util::is_within(out_resolved, sandbox / file)) continue;
      files.push_back(file.lexically_normal());
    }
  } else {
    for (const auto& file : options.source_files) {
      auto resolved = fs::weakly_canonical(sandbox / file, ec);
      if (ec || !util::is_within(sandbox, resolved) || resolved == sandbox ||
          !fs::is_regular_file(fs::symlink_status(sandbox / file, ec))) {
        return std::unexpected(core::InvalidSandboxPath{file, "not a regular file inside the sandbox"});
      }
      files.push_back(resolved.lexically_relative(sandbox));
    }
  }
  if (files.empty()) {
    return std::unexpected(core::InvalidSandboxPath{sandbox.string(), "no Elixir sources to compile (lib/**/*.ex, or **/*.ex without lib/)"});
  }
  WorkerJob job;
  job.sandbox_key = sandbox.string();
  job.source_root = sandbox;
  job.prior_beams = &options.prior_beams;
  for (const auto& file : files) {
    job.files.push_back(file.string());
  }
  job.debug_info = options.debug_info;
  job.parallel = options.parallel;
  job.reuse = options.limits.worker_reuse;
  return run_in_worker(job, output, options.limits);
}

InProcessResult compile_string(std::string_view code, std::string_view filename,
                               const std::optional<fs::path>& output,
                               const core::CompileOptions& limits)
{
  if (!plain_source_name(filename)) {
    return std::unexpected(core::InvalidOption{
      "filename", "must be a plain file name ending in .ex or .exs, without directories"});
  }
  fs::path out_dir;
  std::optional<fs::path> temp;
  if (output) {
    out_dir = *output;
  } else {
    if (auto key = engine_key(); !key) {
      return std::unexpected(core::JailSetupFailed{"engine_state", key.error()});
    }
    auto made = create_marked_temp_dir(limits.temp_dir.value_or(util::default_temp_root()));
    if (!made) {
      return std::unexpected(core::JailSetupFailed{"temp_dir", made.error()});
    }
    temp = *made;
    out_dir = *made / "ebin";
  }
  WorkerJob job;
  std::string text(code);
  std::string name(filename);
  job.populate = [&](const fs::path& sandbox_host) -> std::expected<void, std::string> {
    return util::write_file_replace(sandbox_host / name, text);
  };
  job.files = {name};
  job.reuse = limits.worker_reuse;
  auto result = run_in_worker(job, out_dir, limits);
  if (result && result->modules.empty()) {
    result = std::unexpected(core::NoBytecodeGenerated{"the code defines no module"});
  }
  if (temp) {
    if (result) {
      result->temp_dir = *temp;
    } else {
      (void)util::remove_tree(*temp);
    }
  }
  return result;
}

std::expected<std::vector<LoadedModule>, core::Error> load_beam_files(const std::vector<fs::path>& files)
{
  std::vector<LoadedModule> out;
  out.reserve(files.size());
  beam::Limits limits;
  for (const auto& file : files) {
    // The name comes from the BEAM itself, whatever the file is called.
    auto binary = util::read_file(file, limits.max_file_bytes);
    if (!binary) {
      return std::unexpected(core::BeamValidationFailed{file.string(), binary.error()});
    }
    auto checked = beam::parse_beam(*binary, limits);
    if (!checked) {
      return std::unexpected(core::BeamValidationFailed{file.string(), checked.error().reason});
    }
    out.push_back({checked->module, file, std::move(*binary)});
  }
  return out;
}

CompileResult compile_sandbox_in_process(const fs::path& sandbox, const std::vector<fs::path>& sources,
                                         const core::CompileOptions& options,
                                         std::vector<PriorBeam> prior_beams)
{
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
  InProcessOptions in_process;
  for (const auto& source : sources) {
    in_process.source_files.push_back(source.string());
  }
  in_process.limits = options;
  in_process.prior_beams = std::move(prior_beams);
  auto compiled = compile_in_process(sandbox, *temp / "ebin", in_process);
  if (!compiled) {
    (void)util::remove_tree(*temp);
    return std::unexpected(compiled.error());
  }
  CompileInfo info;
  info.beam_files = std::move(compiled->beam_files);
  info.modules = std::move(compiled->modules);
  info.temp_dir = *temp;
  info.warnings = std::move(compiled->warnings);
  info.changed_files = compiled->compiled_sources;
  info.original_changed_files = std::move(compiled->compiled_sources);
  info.references = std::move(compiled->references);
  info.compiler = "in_process";
  info.toolchain = compiled->toolchain;
  info.resource_usage = compiled->resource_usage;
  info.isolation = worker::Pool::global().isolation();
  info.isolation.mode = "jail (warm worker)";
  info.worker = to_json(compiled->worker);
  info.suspicious_artifacts = std::move(compiled->suspicious_artifacts);
  return info;
}

void configure_worker_pool(const WorkerPoolSettings& settings)
{
  worker::PoolSettings pool;
  pool.size = settings.size;
  pool.prestart = settings.prestart;
  pool.idle_timeout = settings.idle_timeout;
  pool.reuse_per_sandbox = settings.reuse_per_sandbox;
  if (!settings.toolchain.empty()) {
    // Checked by the caller; a toolchain that cannot be resolved keeps the default.
    if (auto tools = backends::resolve_toolchain(settings.toolchain); tools) {
      core::CompileOptions defaults;
      pool.profile = worker::WorkerProfile{backends::job_limits(defaults),
                                           worker::default_worker_env({}, *tools), *tools};
    }
  }
  worker::Pool::global().configure(pool);
}

void shutdown_worker_pool() { worker::Pool::global().shutdown(); }

nlohmann::json worker_pool_json()
{
  auto stats = worker::Pool::global().stats();
  return {{"idle", stats.idle},
          {"busy", stats.busy},
          {"starting", stats.starting},
          {"started", stats.started_total},
          {"kept_sandbox_copies", kept_source_mirrors()}};
}

bool worker_pool_is_warm() { return worker::Pool::global().prestarting(); }

nlohmann::json to_json(const WorkerOutcome& outcome)
{
  nlohmann::json out = {{"reused", outcome.reused}, {"confined", outcome.confined}, {"kept", outcome.kept}};
  if (!outcome.confined) {
    out["reason"] = outcome.reason;
  }
  if (!outcome.kept) {
    out["retired"] = outcome.retired;
  }
  if (outcome.sources_lent) {
    out["sources"] = {{"kept_copy", outcome.sources_reused}, {"copied", outcome.sources_copied}};
  }
  return out;
}

nlohmann::json to_json(const InProcessResult& result)
{
  using nlohmann::json;
  if (!result) {
    return {{"ok", false}, {"error", core::to_json(result.error())}};
  }
  const auto& info = *result;
  json out;
  out["ok"] = true;
  out["modules"] = info.modules;
  out["beam_files"] = json::array();
  for (const auto& file : info.beam_files) {
    out["beam_files"].push_back(file.string());
  }
  out["warnings"] = json::array();
  for (const auto& warning : info.warnings) {
    out["warnings"].push_back(core::to_json(warning));
  }
  out["references"] = json::array();
  for (const auto& refs : info.references) {
    out["references"].push_back({{"file", refs.file},
                                 {"modules", refs.modules},
                                 {"compile", refs.compile_refs},
                                 {"export", refs.export_refs},
                                 {"runtime", refs.runtime_refs},
                                 {"external_resources", refs.external_resources}});
  }
  out["compiled_sources"] = info.compiled_sources;
  out["compilation_time"] = info.compilation_time_ms;
  out["resource_usage"] = jail::to_json(info.resource_usage);
  out["temp_dir"] = info.temp_dir.empty() ? json(nullptr) : json(info.temp_dir.string());
  out["suspicious_artifacts"] = json::array();
  for (const auto& finding : info.suspicious_artifacts) {
    out["suspicious_artifacts"].push_back(to_json(finding));
  }
  out["reused_worker"] = info.reused_worker;
  out["worker_id"] = info.worker_id;
  out["worker"] = to_json(info.worker);
  out["compiler"] = "in_process";
  if (info.toolchain) {
    out["toolchain"] = info.toolchain->to_json();
  }
  return out;
}

} // namespace sandbox::compiler
