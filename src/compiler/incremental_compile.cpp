// The incremental pipeline: detect changes -> decide the strategy -> compile
// the stale files (partial jobs with the previous BEAMs on the code path) ->
// cascade to dependents whose inputs really changed -> store. See
// docs/incremental.md for the design and its limits.

#include "compiler/incremental_compile.h"

#include "backends/toolchain.h"
#include "beam/beam.h"
#include "compiler/compile_job.h"
#include "compiler/in_process_compiler.h"
#include "compiler/security_gate.h"
#include "compiler/engine_state.h"
#include "compiler/sandbox_path.h"
#include "incremental/graph.h"
#include "incremental/source_facts.h"
#include "incremental/store.h"
#include "incremental/tree_stamps.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/time.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>

namespace sandbox::compiler {

namespace {

namespace inc = sandbox::incremental;
using nlohmann::json;

constexpr int kMaxRounds = 8;

struct ModuleRecord {
  std::string file; // source defining it; empty when unattributed
  std::string beam_sha256;
  std::string md5;
  std::string export_digest;
  bool has_macros = false;
};

struct FileRecord {
  std::map<std::string, std::string> functions;
  std::string ast_digest;
};

struct State {
  std::string generation;
  std::int64_t recorded_at_ns = 0;
  inc::TreeStamps stamps;
  std::map<std::string, FileRecord> sources;
  std::string fingerprint;
  std::string compiler;
  std::map<std::string, ModuleRecord> modules; // "Elixir.Foo" -> record
  std::optional<std::pair<std::string, std::string>> app; // file name, sha256
  inc::DependencyGraph graph;
  bool unattributed = false;
  std::string strategy;
  std::int64_t compilation_time_ms = 0;
  std::vector<std::string> changed_files;
};

struct Stats {
  std::int64_t total = 0;
  std::int64_t incremental = 0;
  std::int64_t hits = 0;
  std::int64_t full = 0;
  std::int64_t failed = 0;
  std::int64_t total_time_ms = 0;
};

std::string stat_identity(const fs::path& path)
{
  std::error_code ec;
  auto real = fs::canonical(path, ec);
  struct stat st {};
  if (ec || ::stat(real.c_str(), &st) != 0) {
    return path.string() + ":missing";
  }
  return fmt::format("{}:{}:{}:{}", real.string(), st.st_size, st.st_mtim.tv_sec, st.st_ino);
}

// Toolchain identity, compile options and env: any change means a full compile.
std::string fingerprint(const core::CompileOptions& options)
{
  json fp;
  fp["format"] = 1;
  fp["compiler"] = core::to_string(options.compiler);
  fp["env"] = options.env;
  fp["source_files"] = options.source_files;
  fp["validate_beams"] = options.validate_beams;
  const auto& tools = backends::toolchain();
  if (tools) {
    fp["toolchain"] = {stat_identity(tools->elixir), stat_identity(tools->elixirc),
                       stat_identity(tools->erl), stat_identity(tools->erlc)};
    std::error_code ec;
    auto elixir_root = fs::canonical(tools->elixir, ec).parent_path().parent_path();
    fp["elixir_app"] = stat_identity(elixir_root / "lib" / "elixir" / "ebin" / "elixir.app");
  }
  // Escaped, not replaced: two names that differ only in bytes that are not
  // UTF-8 must not give the same fingerprint.
  return util::sha256_hex(util::escape_strings(fp).dump());
}

bool config_input(const std::string& relative)
{
  return relative == "mix.exs" || relative == "mix.lock" || relative.starts_with("config/");
}

bool elixir_source(const std::string& relative)
{
  return relative.starts_with("lib/") && relative.ends_with(".ex");
}

std::string module_key(std::string_view beam_module)
{
  return std::string(beam_module);
}

std::string elixir_name(const std::string& beam_module)
{
  return beam_module.starts_with("Elixir.") ? beam_module.substr(7) : beam_module;
}

// ---- persistence ----------------------------------------------------------

json state_files_json(const State& s)
{
  json functions = json::object();
  json ast = json::object();
  for (const auto& [file, record] : s.sources) {
    functions[file] = record.functions;
    ast[file] = record.ast_digest;
  }
  return {{"generation", s.generation}, {"recorded_at_ns", s.recorded_at_ns},
          {"files", inc::to_json(s.stamps)}, {"functions", functions}, {"ast_digests", ast}};
}

json last_compilation_json(const State& s)
{
  json modules = json::object();
  for (const auto& [name, m] : s.modules) {
    modules[name] = {{"file", m.file}, {"beam_sha256", m.beam_sha256}, {"md5", m.md5},
                     {"export_digest", m.export_digest}, {"has_macros", m.has_macros}};
  }
  json app = s.app ? json{{"name", s.app->first}, {"sha256", s.app->second}} : json(nullptr);
  return {{"generation", s.generation}, {"status", "ok"}, {"compiler", s.compiler},
          {"fingerprint", s.fingerprint}, {"compilation_strategy", s.strategy},
          {"compilation_time", s.compilation_time_ms}, {"changed_files", s.changed_files},
          {"compiled_at_ns", inc::now_ns()}, {"modules", modules}, {"app_file", app},
          {"unattributed_modules", s.unattributed}};
}

std::optional<State> load_state(const inc::CacheDir& dir, const std::string& key,
                                std::vector<std::string>& warnings)
{
  auto read = [&](const char* name) -> std::optional<json> {
    auto doc = dir.read(name, key);
    if (!doc) {
      if (doc.error() != "missing") {
        warnings.push_back(fmt::format("{}: {}: ignored, compiling without it", name, doc.error()));
      }
      return std::nullopt;
    }
    return *doc;
  };
  // last_compilation.json names the generation; the graph and the hashes of
  // that generation are the current files or, when a later compile's write
  // was interrupted before its last_compilation.json, the kept previous ones.
  auto last = read(inc::kLastCompilation);
  if (!last) {
    return std::nullopt;
  }
  auto of_generation = [&](const char* name) -> std::optional<json> {
    auto current = dir.read(name, key);
    if (current && current->is_object() && current->contains("generation") &&
        (*last)["generation"] == (*current)["generation"]) {
      return *current;
    }
    auto previous = dir.read_previous(name, key);
    if (previous && previous->is_object() && previous->contains("generation") &&
        (*last)["generation"] == (*previous)["generation"]) {
      return *previous;
    }
    if (!current && current.error() != "missing") {
      warnings.push_back(fmt::format("{}: {}: ignored, compiling without it", name, current.error()));
    } else {
      warnings.push_back(fmt::format("{}: not of the last compile's generation: ignored", name));
    }
    return std::nullopt;
  };
  auto files = of_generation(inc::kFileHashes);
  auto graph = of_generation(inc::kDependencyGraph);
  if (!files || !graph) {
    return std::nullopt;
  }
  try {
    State s;
    s.generation = last->at("generation").get<std::string>();
    s.recorded_at_ns = files->at("recorded_at_ns").get<std::int64_t>();
    s.stamps = inc::stamps_from_json(files->at("files"));
    for (const auto& [file, fns] : files->at("functions").items()) {
      s.sources[file].functions = fns.get<std::map<std::string, std::string>>();
    }
    for (const auto& [file, digest] : files->at("ast_digests").items()) {
      s.sources[file].ast_digest = digest.get<std::string>();
    }
    s.graph = inc::graph_from_json(graph->at("graph"));
    s.compiler = last->at("compiler").get<std::string>();
    s.fingerprint = last->at("fingerprint").get<std::string>();
    s.strategy = last->at("compilation_strategy").get<std::string>();
    s.compilation_time_ms = last->at("compilation_time").get<std::int64_t>();
    s.changed_files = last->at("changed_files").get<std::vector<std::string>>();
    s.unattributed = last->at("unattributed_modules").get<bool>();
    for (const auto& [name, m] : last->at("modules").items()) {
      ModuleRecord r;
      r.file = m.at("file").get<std::string>();
      r.beam_sha256 = m.at("beam_sha256").get<std::string>();
      r.md5 = m.at("md5").get<std::string>();
      r.export_digest = m.at("export_digest").get<std::string>();
      r.has_macros = m.at("has_macros").get<bool>();
      s.modules.emplace(name, std::move(r));
    }
    if (!last->at("app_file").is_null()) {
      s.app = std::make_pair(last->at("app_file").at("name").get<std::string>(),
                             last->at("app_file").at("sha256").get<std::string>());
    }
    return s;
  } catch (const json::exception& e) {
    warnings.push_back(fmt::format("cache files are malformed ({}): ignored", e.what()));
    return std::nullopt;
  }
}

std::expected<void, std::string> save_state(const inc::CacheDir& dir, const std::string& key, const State& s)
{
  json graph = {{"generation", s.generation}, {"graph", inc::to_json(s.graph)}};
  // last_compilation.json is written last and commits the generation. Before
  // the graph and the hashes are replaced, the copies of the committed
  // generation are kept as <name>.previous, so a write interrupted anywhere
  // before the commit leaves the previous compile's state readable (a
  // partial compile next time, not a full one).
  std::optional<json> committed;
  if (auto last = dir.read(inc::kLastCompilation, key); last && last->is_object()) {
    committed = last->value("generation", json());
  }
  for (const auto& [name, doc] : {std::pair{inc::kDependencyGraph, graph},
                                  std::pair{inc::kFileHashes, state_files_json(s)}}) {
    auto current = dir.read(name, key);
    if (committed && current && current->is_object() && current->value("generation", json()) == *committed) {
      if (auto kept = dir.keep_previous(name); !kept) {
        return std::unexpected(fmt::format("{}: {}", name, kept.error()));
      }
    }
    if (auto written = dir.write(name, doc, key); !written) {
      return std::unexpected(fmt::format("{}: {}", name, written.error()));
    }
  }
  if (auto written = dir.write(inc::kLastCompilation, last_compilation_json(s), key); !written) {
    return std::unexpected(fmt::format("{}: {}", inc::kLastCompilation, written.error()));
  }
  return {};
}

Stats load_stats(const inc::CacheDir& dir, const std::string& key, std::vector<std::string>& warnings)
{
  Stats st;
  auto doc = dir.read(inc::kCacheStats, key);
  if (!doc) {
    if (doc.error() != "missing") {
      warnings.push_back(fmt::format("{}: {}: statistics restarted", inc::kCacheStats, doc.error()));
    }
    return st;
  }
  try {
    st.total = doc->at("total_compilations").get<std::int64_t>();
    st.incremental = doc->at("incremental_compilations").get<std::int64_t>();
    st.hits = doc->at("cache_hits").get<std::int64_t>();
    st.full = doc->at("full_compilations").get<std::int64_t>();
    st.failed = doc->at("failed_compilations").get<std::int64_t>();
    st.total_time_ms = doc->at("total_compilation_time").get<std::int64_t>();
  } catch (const json::exception&) {
    warnings.push_back("cache_stats.json is malformed: statistics restarted");
    st = {};
  }
  return st;
}

json stats_json(const Stats& st)
{
  auto ratio = [&](std::int64_t n) {
    return st.total == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(st.total);
  };
  return {{"total_compilations", st.total},
          {"incremental_compilations", st.incremental},
          {"cache_hits", st.hits},
          {"full_compilations", st.full},
          {"failed_compilations", st.failed},
          {"total_compilation_time", st.total_time_ms},
          {"cache_hit_rate", ratio(st.hits)},
          {"incremental_rate", ratio(st.incremental)},
          {"average_compilation_time", st.total == 0 ? 0 : st.total_time_ms / st.total}};
}

// ---- analysis -------------------------------------------------------------

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

// ---- outputs --------------------------------------------------------------

struct Produced {
  std::string module; // BEAM module atom, e.g. Elixir.Foo
  ModuleRecord record;
};

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
  p.module = module_key(parsed->module);
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

// A fresh engine temp dir holding the state's BEAMs (and .app), read from the store.
std::expected<CompileInfo, core::Error> materialize(const State& s, const inc::ObjectStore& store,
                                                    const core::CompileOptions& options)
{
  auto parent = options.temp_dir.value_or(util::default_temp_root());
  auto temp = create_marked_temp_dir(parent);
  if (!temp) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", temp.error()});
  }
  CompileInfo info;
  info.temp_dir = *temp;
  auto ebin = *temp / "ebin";
  std::error_code ec;
  fs::create_directories(ebin, ec);
  auto fail = [&](const std::string& why) -> std::expected<CompileInfo, core::Error> {
    (void)util::remove_tree(*temp);
    return std::unexpected(core::CompilerCrash{"cache", why, {}});
  };
  if (ec) {
    return fail("cannot create " + ebin.string());
  }
  for (const auto& [module, record] : s.modules) {
    auto bytes = store.get(record.beam_sha256);
    if (!bytes) {
      return fail(bytes.error());
    }
    auto path = ebin / (module + ".beam");
    if (auto written = util::write_file_replace(path, *bytes, 0644); !written) {
      return fail(written.error());
    }
    info.beam_files.push_back(path);
    info.modules.push_back(module);
  }
  if (s.app) {
    auto bytes = store.get(s.app->second);
    if (!bytes) {
      return fail(bytes.error());
    }
    auto path = ebin / s.app->first;
    if (auto written = util::write_file_replace(path, *bytes, 0644); !written) {
      return fail(written.error());
    }
    info.app_file = path;
  }
  return info;
}

bool objects_present(const State& s, const inc::ObjectStore& store)
{
  for (const auto& [module, record] : s.modules) {
    if (!store.has(record.beam_sha256)) {
      return false;
    }
  }
  return !s.app || store.has(s.app->second);
}

// ---- the pipeline ---------------------------------------------------------

struct Run {
  fs::path sandbox;
  const core::CompileOptions* options = nullptr;
  std::string key;
  inc::ObjectStore store{fs::path()};
  std::vector<std::string> warnings;
};

std::vector<std::string> source_files_of(const core::CompileOptions& options, const inc::TreeStamps& stamps)
{
  std::vector<std::string> out;
  if (!options.source_files.empty()) {
    for (const auto& f : options.source_files) {
      out.push_back(fs::path(f).lexically_normal().string());
    }
    return out;
  }
  for (const auto& [path, stamp] : stamps) {
    if (elixir_source(path)) {
      out.push_back(path);
    }
  }
  return out;
}

// Builds the state of a full compile from its outputs.
std::expected<State, std::string> state_from_full(Run& run, const CompileInfo& info, const inc::TreeStamps& stamps)
{
  State s;
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

// Why a partial compile would not be sound for this change, if it would not.
std::optional<std::string> partial_unsound(const State& prev, const core::CompileOptions& options,
                                           const inc::TreeDiff& diff, const std::set<std::string>& sources)
{
  if (options.compiler != core::Backend::elixirc && options.compiler != core::Backend::mix) {
    return fmt::format("the {} backend always compiles in full", core::to_string(options.compiler));
  }
  if (prev.unattributed) {
    return std::string("the previous build has modules no source file accounts for");
  }
  for (const auto* set : {&diff.changed, &diff.added, &diff.deleted}) {
    for (const auto& path : *set) {
      if (config_input(path)) {
        return path + " changed";
      }
      if (options.compiler == core::Backend::mix && !sources.contains(path) && !prev.graph.files.contains(path)) {
        return path + " changed (Mix projects recompile in full when a file outside lib/ changes)";
      }
    }
  }
  return std::nullopt;
}

bool mix_unsafe_facts(const inc::FileDeps& deps)
{
  for (const auto& ref : deps.compile_refs) {
    if (ref == "Application" || ref == "Mix" || ref.starts_with("Mix.")) {
      return true;
    }
  }
  return false;
}

struct PartialOutcome {
  State state;
  std::vector<std::string> compiled; // every file compiled, in order
  std::vector<core::Diagnostic> warnings;
  std::string output;
  jail::ResourceUsage usage;
  jail::Isolation isolation;
};

// Runs the partial rounds. An unexpected result (a module no compiled file
// accounts for, one defined twice, too many rounds) is a reason to fall back
// to a full compile, returned as a string.
std::expected<std::expected<PartialOutcome, std::string>, core::Error>
run_partial(Run& run, const State& prev, const inc::TreeStamps& now, const inc::TreeDiff& diff,
            std::set<std::string> batch, std::set<std::string> forced_files)
{
  const auto& options = *run.options;
  PartialOutcome out;
  State s = prev;
  s.stamps = now;
  std::set<std::string> sources;
  for (const auto& f : source_files_of(options, now)) {
    sources.insert(f);
  }
  // Deleted sources take their modules with them.
  std::set<std::string> code_changed;
  std::set<std::string> export_changed;
  for (const auto& file : diff.deleted) {
    s.graph.files.erase(file);
    s.sources.erase(file);
    for (auto it = s.modules.begin(); it != s.modules.end();) {
      if (it->second.file == file) {
        code_changed.insert(elixir_name(it->first));
        export_changed.insert(elixir_name(it->first));
        it = s.modules.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& file : forced_files) {
    for (const auto& m : prev.graph.files.contains(file) ? prev.graph.files.at(file).modules
                                                          : std::vector<std::string>{}) {
      code_changed.insert(m);
    }
  }
  auto macro_modules = [&] {
    std::set<std::string> out_set;
    for (const auto& [name, m] : s.modules) {
      if (m.has_macros) out_set.insert(elixir_name(name));
    }
    return out_set;
  };
  if (options.dependency_analysis && (!code_changed.empty() || !export_changed.empty())) {
    auto more = inc::affected_files(s.graph, code_changed, export_changed, macro_modules(), batch);
    batch.insert(more.begin(), more.end());
  }
  for (int round = 0; !batch.empty(); ++round) {
    if (round >= kMaxRounds) {
      return std::expected<PartialOutcome, std::string>(std::unexpected("the cascade did not settle"));
    }
    // Analyse the batch as it is now.
    std::map<std::string, std::string> structs;
    std::map<std::string, std::string> owner;
    for (const auto& file : batch) {
      auto analyzed = analyze_file(run.sandbox, file);
      if (options.compiler == core::Backend::mix && mix_unsafe_facts(analyzed.deps)) {
        return std::expected<PartialOutcome, std::string>(
          std::unexpected(file + " uses Mix or the application environment at compile time"));
      }
      for (const auto& m : analyzed.deps.modules) {
        owner.emplace(m, file);
      }
      structs.insert(analyzed.structs.begin(), analyzed.structs.end());
      s.sources[file] = std::move(analyzed.record);
      s.graph.files[file] = std::move(analyzed.deps);
    }
    // The previous BEAMs of every module not being recompiled.
    JobHooks hooks;
    std::map<std::string, ModuleRecord> old_batch_modules;
    for (const auto& [name, m] : s.modules) {
      if (batch.contains(m.file)) {
        old_batch_modules.emplace(name, m);
        continue;
      }
      auto bytes = run.store.get(m.beam_sha256);
      if (!bytes) {
        return std::expected<PartialOutcome, std::string>(std::unexpected(bytes.error()));
      }
      hooks.prior_beams.push_back({name + ".beam", std::move(*bytes)});
    }
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
    auto job = compile_job(run.sandbox.string(), job_options, hooks);
    if (!job) {
      return std::unexpected(job.error());
    }
    out.compiled.insert(out.compiled.end(), batch.begin(), batch.end());
    out.warnings.insert(out.warnings.end(), job->warnings.begin(), job->warnings.end());
    out.output += job->output;
    out.usage = job->resource_usage;
    out.isolation = job->isolation;
    for (const auto& file : batch) {
      apply_references(s.graph.files[file], job->references, file);
    }
    std::map<std::string, ModuleRecord> produced;
    std::string failure;
    for (const auto& beam_file : job->beam_files) {
      auto p = store_beam(run.store, beam_file, structs);
      if (!p) {
        failure = p.error();
        break;
      }
      auto found = owner.find(elixir_name(p->module));
      if (found == owner.end()) {
        failure = p->module + " is not accounted for by the compiled files";
        break;
      }
      auto existing = s.modules.find(p->module);
      if (existing != s.modules.end() && !batch.contains(existing->second.file)) {
        failure = p->module + " is also defined by " + existing->second.file;
        break;
      }
      p->record.file = found->second;
      produced.emplace(p->module, std::move(p->record));
    }
    (void)cleanup_temp_artifacts(job->temp_dir);
    if (!failure.empty()) {
      return std::expected<PartialOutcome, std::string>(std::unexpected(failure));
    }
    // What really changed, judged on compiled code, not on source text.
    std::set<std::string> round_code = round == 0 ? code_changed : std::set<std::string>{};
    std::set<std::string> round_exports = round == 0 ? export_changed : std::set<std::string>{};
    for (const auto& [name, old] : old_batch_modules) {
      auto now_it = produced.find(name);
      if (now_it == produced.end()) {
        round_code.insert(elixir_name(name));
        round_exports.insert(elixir_name(name));
        s.modules.erase(name);
      }
    }
    for (auto& [name, record] : produced) {
      auto old = old_batch_modules.find(name);
      if (old == old_batch_modules.end()) {
        round_code.insert(elixir_name(name));
        round_exports.insert(elixir_name(name));
      } else {
        if (old->second.md5 != record.md5) round_code.insert(elixir_name(name));
        if (old->second.export_digest != record.export_digest) round_exports.insert(elixir_name(name));
      }
      s.modules[name] = std::move(record);
    }
    if (!options.dependency_analysis) {
      break;
    }
    batch = inc::affected_files(s.graph, round_code, round_exports, macro_modules(), batch);
    std::erase_if(batch, [&](const std::string& f) { return !sources.contains(f); });
  }
  out.state = std::move(s);
  return out;
}

struct Decision {
  std::string strategy; // cache_hit, incremental, full
  std::string reason;
};

void record_stats(Run& run, const inc::CacheDir& dir, Stats st, const std::string& strategy,
                  std::int64_t time_ms, bool failed)
{
  if (failed) {
    ++st.failed;
  } else {
    ++st.total;
    st.total_time_ms += time_ms;
    if (strategy == "cache_hit") {
      ++st.hits;
      ++st.incremental;
    } else if (strategy == "incremental") {
      ++st.incremental;
    } else {
      ++st.full;
    }
  }
  if (auto written = dir.write(inc::kCacheStats, stats_json(st), run.key); !written) {
    run.warnings.push_back(fmt::format("{}: {}", inc::kCacheStats, written.error()));
  }
}

} // namespace

CompileResult incremental_compile_sandbox(const std::string& path,
                                          const std::vector<std::string>& changed_files,
                                          const core::CompileOptions& options)
{
  util::Stopwatch clock;
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto explicit_changed = resolve_source_files(*sandbox, changed_files);
  if (!explicit_changed) {
    return std::unexpected(explicit_changed.error());
  }
  // The whole tree is scanned before any cache decision: a cache hit never
  // skips the scan (the options may differ from the compile that filled it).
  if (auto scanned = security_gate_before(*sandbox, {}, options); !scanned) {
    return std::unexpected(scanned.error());
  }
  auto key = engine_key();
  if (!key) {
    return std::unexpected(core::JailSetupFailed{"engine_state", key.error()});
  }
  auto state_root = state_dir();
  auto lock = inc::SandboxLock::acquire(state_root, inc::sandbox_id(*sandbox));
  if (!lock) {
    return std::unexpected(core::JailSetupFailed{"engine_state", lock.error()});
  }
  Run run;
  run.sandbox = *sandbox;
  run.options = &options;
  run.key = *key;
  run.store = inc::ObjectStore(state_root / "objects");

  auto dir = inc::CacheDir::open(*sandbox, state_root, true, run.warnings);
  if (!dir) {
    // No place to keep a cache: a plain compile, said so.
    auto plain = options;
    plain.incremental = false;
    auto result = compile_job(path, plain, {});
    if (result) {
      result->cache_warnings = run.warnings;
      result->cache_warnings.push_back("no cache directory: " + dir.error());
    }
    return result;
  }
  auto stats = load_stats(*dir, run.key, run.warnings);
  std::optional<State> prev;
  if (!options.force_recompile && !options.skip_cache) {
    prev = load_state(*dir, run.key, run.warnings);
  }
  // Everything below compares against what the sandbox held when this compile started.
  auto started_ns = inc::now_ns();
  auto before = inc::stamp_tree(*sandbox, prev ? prev->stamps : inc::TreeStamps{},
                                prev ? prev->recorded_at_ns : 0);
  if (!before) {
    return std::unexpected(core::InvalidSandboxPath{path, before.error()});
  }
  auto fp = fingerprint(options);
  std::string compiler_name(core::to_string(options.compiler));

  Decision decision{"full", ""};
  inc::TreeDiff diff;
  std::set<std::string> sources;
  for (const auto& f : source_files_of(options, *before)) {
    sources.insert(f);
  }
  if (options.force_recompile) {
    decision.reason = "force_recompile";
  } else if (options.skip_cache) {
    decision.reason = "skip_cache";
  } else if (!prev) {
    decision.reason = "no usable cache";
  } else if (prev->fingerprint != fp || prev->compiler != compiler_name) {
    decision.reason = "the toolchain, compile options or env changed";
  } else if (!objects_present(*prev, run.store)) {
    decision.reason = "cached BEAMs are missing from the engine's store";
  } else {
    diff = inc::diff_trees(prev->stamps, *before);
    for (const auto& file : *explicit_changed) {
      auto name = file.string();
      if (before->contains(name) && !diff.added.contains(name)) {
        diff.changed.insert(name);
      }
    }
    if (diff.empty()) {
      decision = {"cache_hit", ""};
    } else if (auto why = partial_unsound(*prev, options, diff, sources)) {
      decision.reason = *why;
    } else {
      decision = {"incremental", ""};
    }
  }

  auto finish = [&](CompileInfo info, const State& s, const std::string& strategy,
                    std::vector<std::string> compiled, std::vector<std::string> original) -> CompileResult {
    info.incremental = strategy != "full" || options.incremental;
    info.cache_hit = strategy == "cache_hit";
    info.compilation_strategy = strategy;
    info.changed_files = std::move(compiled);
    info.original_changed_files = std::move(original);
    info.compiler = compiler_name;
    info.compilation_time_ms = clock.elapsed_ms();
    if (strategy != "cache_hit") {
      // An edit made while compiling is not lost: files that changed since
      // `before` are recorded as unknown, so the next compile sees them.
      State stored = s;
      auto after = inc::stamp_tree(run.sandbox, *before, INT64_MAX);
      if (after) {
        auto during = inc::diff_trees(*before, *after);
        for (const auto* set : {&during.changed, &during.deleted}) {
          for (const auto& p : *set) {
            stored.stamps[p].sha256 = "changed-during-compile";
          }
        }
      } else {
        stored.stamps.clear();
      }
      stored.generation = util::sha256_hex(util::random_bytes(16)).substr(0, 32);
      stored.recorded_at_ns = started_ns;
      stored.fingerprint = fp;
      stored.compiler = compiler_name;
      stored.strategy = strategy;
      stored.compilation_time_ms = info.compilation_time_ms;
      stored.changed_files = info.changed_files;
      if (auto saved = save_state(*dir, run.key, stored); !saved) {
        run.warnings.push_back("cache not saved: " + saved.error());
      }
    }
    record_stats(run, *dir, stats, strategy, info.compilation_time_ms, false);
    info.cache_warnings = std::move(run.warnings);
    return info;
  };
  auto fail = [&](core::Error error) -> CompileResult {
    record_stats(run, *dir, stats, "", 0, true);
    return std::unexpected(std::move(error));
  };

  if (decision.strategy == "cache_hit") {
    auto info = materialize(*prev, run.store, options);
    if (info) {
      info->isolation = {};
      return finish(std::move(*info), *prev, "cache_hit", {}, {});
    }
    run.warnings.push_back("cached BEAMs could not be restored: compiling in full");
    decision = {"full", "cached BEAMs could not be restored"};
  }

  std::vector<std::string> original;
  for (const auto* set : {&diff.changed, &diff.added, &diff.deleted}) {
    original.insert(original.end(), set->begin(), set->end());
  }
  std::sort(original.begin(), original.end());

  if (decision.strategy == "incremental") {
    std::set<std::string> batch;
    std::set<std::string> hidden;
    for (const auto* set : {&diff.changed, &diff.added}) {
      for (const auto& p : *set) {
        (sources.contains(p) ? batch : hidden).insert(p);
      }
    }
    for (const auto& p : diff.deleted) {
      if (!prev->graph.files.contains(p)) hidden.insert(p);
    }
    std::set<std::string> forced;
    for (const auto& input : hidden) {
      for (const auto& reader : inc::readers_of(prev->graph, input)) {
        if (sources.contains(reader)) forced.insert(reader);
      }
    }
    batch.insert(forced.begin(), forced.end());
    auto partial = run_partial(run, *prev, *before, diff, batch, forced);
    if (!partial) {
      return fail(partial.error());
    }
    if (*partial) {
      auto& outcome = **partial;
      bool app_ok = true;
      if (prev->app) {
        // The .app lists the modules: keep it only when they are the same.
        std::set<std::string> a;
        std::set<std::string> b;
        for (const auto& [m, r] : prev->modules) a.insert(m);
        for (const auto& [m, r] : outcome.state.modules) b.insert(m);
        app_ok = a == b;
      }
      if (app_ok) {
        auto info = materialize(outcome.state, run.store, options);
        if (!info) {
          return fail(info.error());
        }
        info->warnings = std::move(outcome.warnings);
        info->output = std::move(outcome.output);
        info->resource_usage = outcome.usage;
        info->isolation = outcome.isolation;
        return finish(std::move(*info), outcome.state, "incremental", outcome.compiled, original);
      }
      run.warnings.push_back("the set of modules changed: the .app file needs a full compile");
    } else {
      run.warnings.push_back("compiling in full: " + partial->error());
    }
  } else if (!decision.reason.empty() && prev) {
    run.warnings.push_back("compiling in full: " + decision.reason);
  }

  // Full compile.
  auto plain = options;
  plain.incremental = false;
  auto job = compile_job(path, plain, {});
  if (!job) {
    return fail(job.error());
  }
  auto state = state_from_full(run, *job, *before);
  if (!state) {
    run.warnings.push_back("cache not saved: " + state.error());
    job->cache_warnings = std::move(run.warnings);
    return job;
  }
  auto compiled = job->changed_files;
  return finish(std::move(*job), *state, "full", compiled, original);
}

CompileResult incremental_compile(const std::string& path, const std::vector<std::string>& changed_files,
                                  const core::CompileOptions& options)
{
  auto opts = options;
  opts.incremental = true;
  if (!opts.cache_enabled) {
    return compile_sandbox(path, [&] {
      auto o = opts;
      o.incremental = false;
      return o;
    }());
  }
  return incremental_compile_sandbox(path, changed_files, opts);
}

std::expected<nlohmann::json, core::Error> get_cache_statistics(const std::string& path)
{
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto key = engine_key();
  if (!key) {
    return std::unexpected(core::JailSetupFailed{"engine_state", key.error()});
  }
  std::vector<std::string> warnings;
  auto dir = inc::CacheDir::open(*sandbox, state_dir(), false, warnings);
  Stats st;
  if (dir) {
    st = load_stats(*dir, *key, warnings);
  }
  auto out = stats_json(st);
  out["cache_warnings"] = warnings;
  return out;
}

std::expected<void, core::Error> clear_compilation_cache(const std::string& path)
{
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) {
    return std::unexpected(sandbox.error());
  }
  auto root = state_dir();
  auto lock = inc::SandboxLock::acquire(root, inc::sandbox_id(*sandbox));
  if (!lock) {
    return std::unexpected(core::JailSetupFailed{"engine_state", lock.error()});
  }
  std::vector<std::string> warnings;
  if (auto dir = inc::CacheDir::open(*sandbox, root, false, warnings)) {
    dir->clear();
  }
  // Also the engine-side copy, whichever location was in use.
  std::error_code ec;
  auto engine_copy = root / "caches" / inc::sandbox_id(*sandbox);
  if (fs::is_directory(fs::symlink_status(engine_copy, ec))) {
    (void)util::remove_tree(engine_copy);
  }
  return {};
}

} // namespace sandbox::compiler
