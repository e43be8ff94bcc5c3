#include "compiler/incremental_partial.h"

#include "beam/beam.h"
#include "compiler/compile_job.h"
#include "compiler/in_process_compiler.h"
#include "compiler/incremental_plan.h"
#include "incremental/graph.h"
#include "incremental/source_facts.h"
#include "util/fs.h"
#include "util/hash.h"

#include <fmt/format.h>

#include <algorithm>

namespace sandbox::compiler {

namespace {

namespace inc = sandbox::incremental;

constexpr int kMaxRounds = 8;

// What source analysis says about one file.
struct Analyzed {
  inc::FileDeps deps;
  FileRecord record;
  std::map<std::string, std::string> structs; // module -> digest
};

Analyzed analyze_file(const fs::path& sandbox, const std::string& relative)
{
  Analyzed out;
  auto text = util::read_file(sandbox / relative, 64ull << 20);
  if (!text) {
    out.deps.reads_unknown = true;
    return out;
  }
  auto facts = inc::analyze_elixir(*text);
  out.deps.modules = facts.modules;
  out.deps.compile_refs = std::move(facts.compile_refs);
  out.deps.export_refs = std::move(facts.export_refs);
  out.deps.runtime_refs = std::move(facts.runtime_refs);
  out.deps.imports = std::move(facts.imports);
  out.deps.reads = std::move(facts.reads);
  out.deps.reads_unknown = facts.reads_unknown;
  out.deps.dynamic_compile = facts.dynamic_compile;
  out.record.functions = std::move(facts.functions);
  out.record.ast_digest = std::move(facts.ast_digest);
  out.structs = std::move(facts.structs);
  return out;
}

// The compiler's own references, where the backend recorded them, replace
// source analysis for that file.
void apply_references(inc::FileDeps& deps, const std::vector<core::FileReferences>& refs,
                      const std::string& file)
{
  for (const auto& r : refs) {
    if (r.file != file) {
      continue;
    }
    deps.modules = r.modules;
    deps.compile_refs = {r.compile_refs.begin(), r.compile_refs.end()};
    deps.export_refs = {r.export_refs.begin(), r.export_refs.end()};
    deps.runtime_refs = {r.runtime_refs.begin(), r.runtime_refs.end()};
    deps.imports.clear();
    deps.reads = {r.external_resources.begin(), r.external_resources.end()};
    deps.reads_unknown = false;
    deps.source = "compiler_references";
  }
}

struct Produced {
  std::string module; // BEAM module atom, e.g. Elixir.Foo
  ModuleRecord record;
};

// Puts a produced BEAM into the store and records what dependents are judged
// on: its beam_lib:md5 and the digest of its exports and defstruct.
std::expected<Produced, std::string> store_beam(const inc::ObjectStore& store, const fs::path& file,
                                                const std::map<std::string, std::string>& structs)
{
  auto bytes = util::read_file(file, 64ull << 20);
  if (!bytes) {
    return std::unexpected(bytes.error());
  }
  auto parsed = beam::parse_beam(*bytes);
  if (!parsed) {
    return std::unexpected(parsed.error().reason);
  }
  auto sha = store.put(*bytes);
  if (!sha) {
    return std::unexpected(sha.error());
  }
  Produced p;
  p.module = std::string(parsed->module);
  p.record.beam_sha256 = *sha;
  p.record.md5 = parsed->md5.empty() ? *sha : parsed->md5;
  std::vector<std::string> exports;
  for (const auto& e : parsed->exports) {
    exports.push_back(fmt::format("{}/{}", e.function, e.arity));
    p.record.has_macros = p.record.has_macros || e.function.starts_with("MACRO-");
  }
  std::sort(exports.begin(), exports.end());
  std::string digest_input;
  for (const auto& e : exports) {
    digest_input += e + "\n";
  }
  auto st = structs.find(elixir_name(p.module));
  digest_input += "struct:" + (st == structs.end() ? std::string() : st->second);
  p.record.export_digest = util::sha256_hex(digest_input);
  return p;
}

// Mix loads the project's config and Mix.Project only in a real `mix
// compile`: a file that needs them at compile time cannot compile partially.
bool mix_unsafe_facts(const inc::FileDeps& deps)
{
  for (const auto& ref : deps.compile_refs) {
    if (ref == "Application" || ref == "Mix" || ref.starts_with("Mix.")) {
      return true;
    }
  }
  return false;
}

// Elixir names of the modules whose compiled code, or exports, changed.
struct Changes {
  std::set<std::string> code;
  std::set<std::string> exports;
};

// Deleted sources take their modules with them.
void drop_deleted(CacheState& s, const inc::TreeDiff& diff, Changes& changes)
{
  for (const auto& file : diff.deleted) {
    s.graph.files.erase(file);
    s.sources.erase(file);
    for (auto it = s.modules.begin(); it != s.modules.end();) {
      if (it->second.file == file) {
        changes.code.insert(elixir_name(it->first));
        changes.exports.insert(elixir_name(it->first));
        it = s.modules.erase(it);
      } else {
        ++it;
      }
    }
  }
}

std::set<std::string> macro_modules(const CacheState& s)
{
  std::set<std::string> out;
  for (const auto& [name, m] : s.modules) {
    if (m.has_macros) out.insert(elixir_name(name));
  }
  return out;
}

// What the batch's sources say before they compile.
struct BatchFacts {
  std::map<std::string, std::string> structs; // module -> defstruct digest
  std::map<std::string, std::string> owner;   // module -> file defining it
};

// Analyses the batch as it is now, into the state's graph and records.
std::expected<BatchFacts, std::string> analyse_batch(const IncrementalRun& run, CacheState& s,
                                                     const std::set<std::string>& batch)
{
  BatchFacts facts;
  for (const auto& file : batch) {
    auto analyzed = analyze_file(run.sandbox, file);
    if (run.options->compiler == core::Backend::mix && mix_unsafe_facts(analyzed.deps)) {
      return std::unexpected(file + " uses Mix or the application environment at compile time");
    }
    for (const auto& m : analyzed.deps.modules) {
      facts.owner.emplace(m, file);
    }
    facts.structs.insert(analyzed.structs.begin(), analyzed.structs.end());
    s.sources[file] = std::move(analyzed.record);
    s.graph.files[file] = std::move(analyzed.deps);
  }
  return facts;
}

// The previous BEAMs of every module not being recompiled, for the job's code
// path; the batch's own previous modules are set aside in `old_batch_modules`.
std::expected<JobHooks, std::string> prior_beams(const IncrementalRun& run, const CacheState& s,
                                                 const std::set<std::string>& batch,
                                                 std::map<std::string, ModuleRecord>& old_batch_modules)
{
  JobHooks hooks;
  for (const auto& [name, m] : s.modules) {
    if (batch.contains(m.file)) {
      old_batch_modules.emplace(name, m);
      continue;
    }
    auto bytes = run.store.get(m.beam_sha256);
    if (!bytes) {
      return std::unexpected(bytes.error());
    }
    hooks.prior_beams.push_back({name + ".beam", std::move(*bytes), m.beam_sha256});
  }
  return hooks;
}

CompileResult compile_batch(const IncrementalRun& run, const std::set<std::string>& batch,
                            const JobHooks& hooks)
{
  const auto& options = *run.options;
  auto job_options = options;
  // With a warm pool (sandbox serve, a host that configured it) a worker
  // compiles the batch without booting a VM. It sees the sources at
  // /sandbox, the path of the full compile's jailed job, so the BEAMs are
  // the ones a full compile makes. Without one (a one-shot command, where
  // a worker would boot and warm up first) or outside the jail
  // (process_group), elixirc runs as a job.
  job_options.compiler = options.isolation == core::IsolationMode::jail && worker_pool_is_warm()
                           ? core::Backend::in_process
                           : core::Backend::elixirc;
  job_options.incremental = false;
  job_options.source_files.assign(batch.begin(), batch.end());
  return compile_job(run.sandbox.string(), job_options, hooks);
}

// The job's BEAMs, stored and attributed to the batch's files, or why they
// cannot be (a reason to compile in full).
std::expected<std::map<std::string, ModuleRecord>, std::string>
collect_produced(const IncrementalRun& run, const CacheState& s, const std::set<std::string>& batch,
                 const CompileInfo& job, const BatchFacts& facts)
{
  std::map<std::string, ModuleRecord> produced;
  for (const auto& beam_file : job.beam_files) {
    auto p = store_beam(run.store, beam_file, facts.structs);
    if (!p) {
      return std::unexpected(p.error());
    }
    auto found = facts.owner.find(elixir_name(p->module));
    if (found == facts.owner.end()) {
      return std::unexpected(p->module + " is not accounted for by the compiled files");
    }
    auto existing = s.modules.find(p->module);
    if (existing != s.modules.end() && !batch.contains(existing->second.file)) {
      return std::unexpected(p->module + " is also defined by " + existing->second.file);
    }
    p->record.file = found->second;
    produced.emplace(p->module, std::move(p->record));
  }
  return produced;
}

// Puts a round's modules into the state; returns `changes` plus what really
// changed, judged on compiled code, not on source text.
Changes apply_round(CacheState& s, const std::map<std::string, ModuleRecord>& old_batch_modules,
                    std::map<std::string, ModuleRecord> produced, Changes changes)
{
  for (const auto& [name, old] : old_batch_modules) {
    if (!produced.contains(name)) {
      changes.code.insert(elixir_name(name));
      changes.exports.insert(elixir_name(name));
      s.modules.erase(name);
    }
  }
  for (auto& [name, record] : produced) {
    auto old = old_batch_modules.find(name);
    if (old == old_batch_modules.end()) {
      changes.code.insert(elixir_name(name));
      changes.exports.insert(elixir_name(name));
    } else {
      if (old->second.md5 != record.md5) changes.code.insert(elixir_name(name));
      if (old->second.export_digest != record.export_digest) changes.exports.insert(elixir_name(name));
    }
    s.modules[name] = std::move(record);
  }
  return changes;
}

} // namespace

std::expected<std::expected<PartialOutcome, std::string>, core::Error>
run_partial(IncrementalRun& run, const CacheState& prev, const inc::TreeStamps& now,
            const inc::TreeDiff& diff, std::set<std::string> batch, const std::set<std::string>& forced)
{
  using Fallback = std::expected<PartialOutcome, std::string>;
  const auto& options = *run.options;
  PartialOutcome out;
  CacheState& s = out.state;
  s = prev;
  s.stamps = now;
  std::set<std::string> sources;
  for (const auto& f : source_files_of(options, now)) {
    sources.insert(f);
  }
  Changes initial;
  drop_deleted(s, diff, initial);
  for (const auto& file : forced) {
    if (auto found = prev.graph.files.find(file); found != prev.graph.files.end()) {
      initial.code.insert(found->second.modules.begin(), found->second.modules.end());
    }
  }
  if (options.dependency_analysis && (!initial.code.empty() || !initial.exports.empty())) {
    auto more = inc::affected_files(s.graph, initial.code, initial.exports, macro_modules(s), batch);
    batch.insert(more.begin(), more.end());
  }
  for (int round = 0; !batch.empty(); ++round) {
    if (round >= kMaxRounds) {
      return Fallback(std::unexpected("the cascade did not settle"));
    }
    auto facts = analyse_batch(run, s, batch);
    if (!facts) {
      return Fallback(std::unexpected(facts.error()));
    }
    std::map<std::string, ModuleRecord> old_batch_modules;
    auto hooks = prior_beams(run, s, batch, old_batch_modules);
    if (!hooks) {
      return Fallback(std::unexpected(hooks.error()));
    }
    auto job = compile_batch(run, batch, *hooks);
    if (!job) {
      return std::unexpected(job.error());
    }
    out.compiled.insert(out.compiled.end(), batch.begin(), batch.end());
    out.warnings.insert(out.warnings.end(), job->warnings.begin(), job->warnings.end());
    out.output += job->output;
    out.usage = job->resource_usage;
    out.isolation = job->isolation;
    out.worker = job->worker;
    for (const auto& file : batch) {
      apply_references(s.graph.files[file], job->references, file);
    }
    auto produced = collect_produced(run, s, batch, *job, *facts);
    (void)cleanup_temp_artifacts(job->temp_dir);
    if (!produced) {
      return Fallback(std::unexpected(produced.error()));
    }
    auto changes = apply_round(s, old_batch_modules, std::move(*produced), round == 0 ? initial : Changes{});
    if (!options.dependency_analysis) {
      break;
    }
    batch = inc::affected_files(s.graph, changes.code, changes.exports, macro_modules(s), batch);
    std::erase_if(batch, [&](const std::string& f) { return !sources.contains(f); });
  }
  return out;
}

std::expected<CacheState, std::string> state_from_full(IncrementalRun& run, const CompileInfo& info,
                                                       const inc::TreeStamps& stamps)
{
  CacheState s;
  s.stamps = stamps;
  std::map<std::string, std::string> owner; // Elixir name -> file
  std::map<std::string, std::string> structs;
  for (const auto& file : source_files_of(*run.options, stamps)) {
    if (!file.ends_with(".ex") && !file.ends_with(".exs")) {
      continue;
    }
    auto analyzed = analyze_file(run.sandbox, file);
    apply_references(analyzed.deps, info.references, file);
    for (const auto& m : analyzed.deps.modules) {
      owner.emplace(m, file);
    }
    structs.insert(analyzed.structs.begin(), analyzed.structs.end());
    s.sources[file] = std::move(analyzed.record);
    s.graph.files[file] = std::move(analyzed.deps);
  }
  for (const auto& beam_file : info.beam_files) {
    auto produced = store_beam(run.store, beam_file, structs);
    if (!produced) {
      return std::unexpected(produced.error());
    }
    auto found = owner.find(elixir_name(produced->module));
    if (found != owner.end()) {
      produced->record.file = found->second;
    } else {
      s.unattributed = true;
    }
    s.modules[produced->module] = std::move(produced->record);
  }
  if (info.app_file) {
    auto bytes = util::read_file(*info.app_file, 16ull << 20);
    if (!bytes) {
      return std::unexpected(bytes.error());
    }
    auto sha = run.store.put(*bytes);
    if (!sha) {
      return std::unexpected(sha.error());
    }
    s.app = std::make_pair(info.app_file->filename().string(), *sha);
  }
  return s;
}

} // namespace sandbox::compiler
