#include "compiler/incremental_state.h"

#include "compiler/engine_state.h"
#include "util/fs.h"
#include "util/hash.h"

#include <map>
#include <mutex>
#include <fmt/format.h>

namespace sandbox::compiler {

namespace {

namespace inc = sandbox::incremental;
using nlohmann::json;

json state_files_json(const CacheState& s)
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

json last_compilation_json(const CacheState& s)
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
          {"unattributed_modules", s.unattributed}, {"dependencies", s.dependencies}};
}

struct CommittedDocs {
  json last;  // last_compilation.json
  json files; // file_hashes.json
  json graph; // dependency_graph.json
  bool current = true; // the graph and the hashes are the current files, not the kept previous ones
};

// last_compilation.json names the generation; the graph and the hashes of
// that generation are the current files or, when a later compile's write was
// interrupted before its last_compilation.json, the kept previous ones.
std::optional<CommittedDocs> read_committed(const inc::CacheDir& dir, const std::string& key,
                                            std::vector<std::string>& warnings)
{
  auto last = dir.read(inc::kLastCompilation, key);
  if (!last) {
    if (last.error() != "missing") {
      warnings.push_back(
        fmt::format("{}: {}: ignored, compiling without it", inc::kLastCompilation, last.error()));
    }
    return std::nullopt;
  }
  bool all_current = true;
  auto of_generation = [&](const char* name) -> std::optional<json> {
    auto current = dir.read(name, key);
    if (current && current->is_object() && current->contains("generation") &&
        (*last)["generation"] == (*current)["generation"]) {
      return *current;
    }
    all_current = false;
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
  return CommittedDocs{std::move(*last), std::move(*files), std::move(*graph), all_current};
}

ModuleRecord module_from_json(const json& m)
{
  ModuleRecord r;
  r.file = m.at("file").get<std::string>();
  r.beam_sha256 = m.at("beam_sha256").get<std::string>();
  r.md5 = m.at("md5").get<std::string>();
  r.export_digest = m.at("export_digest").get<std::string>();
  r.has_macros = m.at("has_macros").get<bool>();
  return r;
}

// Throws json::exception on a missing or mistyped field.
CacheState state_from_json(const json& last, const json& files, const json& graph)
{
  CacheState s;
  s.generation = last.at("generation").get<std::string>();
  s.recorded_at_ns = files.at("recorded_at_ns").get<std::int64_t>();
  s.stamps = inc::stamps_from_json(files.at("files"));
  for (const auto& [file, fns] : files.at("functions").items()) {
    s.sources[file].functions = fns.get<std::map<std::string, std::string>>();
  }
  for (const auto& [file, digest] : files.at("ast_digests").items()) {
    s.sources[file].ast_digest = digest.get<std::string>();
  }
  s.graph = inc::graph_from_json(graph.at("graph"));
  s.compiler = last.at("compiler").get<std::string>();
  s.fingerprint = last.at("fingerprint").get<std::string>();
  s.strategy = last.at("compilation_strategy").get<std::string>();
  s.compilation_time_ms = last.at("compilation_time").get<std::int64_t>();
  s.changed_files = last.at("changed_files").get<std::vector<std::string>>();
  s.unattributed = last.at("unattributed_modules").get<bool>();
  s.dependencies = last.value("dependencies", json::array());
  for (const auto& [name, m] : last.at("modules").items()) {
    s.modules.emplace(name, module_from_json(m));
  }
  if (!last.at("app_file").is_null()) {
    s.app = std::make_pair(last.at("app_file").at("name").get<std::string>(),
                           last.at("app_file").at("sha256").get<std::string>());
  }
  return s;
}

} // namespace

std::string elixir_name(const std::string& beam_module)
{
  return beam_module.starts_with("Elixir.") ? beam_module.substr(7) : beam_module;
}

namespace {

// The states read or written recently, by the identity of their files and
// the key that verified them: a long-running engine parses and verifies a
// sandbox's cache files once, not on every compile, and knows what it wrote
// without reading it back. Any write replaces a file (a new inode), so an
// identity seen again means the same bytes.
struct Recent {
  std::string identity;
  std::shared_ptr<const CacheState> state;
  bool current = false; // the graph and the hashes on disk are of state.generation (not .previous)
};

struct RecentStates {
  std::mutex mutex;
  std::map<std::string, Recent> by_dir; // cache dir -> what its files hold
};

RecentStates& recent_states()
{
  static RecentStates states;
  return states;
}

constexpr std::size_t kRecentStates = 64;

std::string files_identity(const inc::CacheDir& dir, const std::string& key)
{
  return util::sha256_hex(key) + dir.identity({inc::kLastCompilation, inc::kFileHashes, inc::kDependencyGraph,
                                               std::string(inc::kFileHashes) + inc::kPreviousSuffix,
                                               std::string(inc::kDependencyGraph) + inc::kPreviousSuffix});
}

void remember(const inc::CacheDir& dir, Recent recent)
{
  auto& states = recent_states();
  std::lock_guard lock(states.mutex);
  if (!states.by_dir.contains(dir.path().string()) && states.by_dir.size() >= kRecentStates) {
    states.by_dir.erase(states.by_dir.begin());
  }
  states.by_dir[dir.path().string()] = std::move(recent);
}

// What this engine knows is on disk in `dir`, when the files are still the
// ones it read or wrote.
std::optional<Recent> known_on_disk(const inc::CacheDir& dir, const std::string& key)
{
  auto identity = files_identity(dir, key);
  auto& states = recent_states();
  std::lock_guard lock(states.mutex);
  auto it = states.by_dir.find(dir.path().string());
  if (it == states.by_dir.end() || it->second.identity != identity) {
    return std::nullopt;
  }
  return it->second;
}

} // namespace

std::shared_ptr<const CacheState> load_state(const inc::CacheDir& dir, const std::string& key,
                                     std::vector<std::string>& warnings)
{
  auto identity = files_identity(dir, key);
  auto& recent = recent_states();
  {
    std::lock_guard lock(recent.mutex);
    auto it = recent.by_dir.find(dir.path().string());
    if (it != recent.by_dir.end() && it->second.identity == identity) {
      return it->second.state;
    }
  }
  auto docs = read_committed(dir, key, warnings);
  if (!docs) {
    return nullptr;
  }
  try {
    auto state = std::make_shared<const CacheState>(state_from_json(docs->last, docs->files, docs->graph));
    remember(dir, Recent{identity, state, docs->current});
    return state;
  } catch (const json::exception& e) {
    warnings.push_back(fmt::format("cache files are malformed ({}): ignored", e.what()));
    return nullptr;
  }
}

std::expected<void, std::string> save_state(const inc::CacheDir& dir, const std::string& key,
                                            const CacheState& s)
{
  json graph = {{"generation", s.generation}, {"graph", inc::to_json(s.graph)}};
  json files = state_files_json(s);
  json last = last_compilation_json(s);
  // last_compilation.json is written last and commits the generation. Before
  // the graph and the hashes are replaced, the copies of the committed
  // generation are kept as <name>.previous, so a write interrupted anywhere
  // before the commit leaves the previous compile's state readable (a
  // partial compile next time, not a full one). Files this engine read or
  // wrote and that are unchanged since are not read again to learn that.
  auto known = known_on_disk(dir, key);
  std::optional<json> committed;
  if (known) {
    committed = known->state->generation;
  } else if (auto on_disk = dir.read(inc::kLastCompilation, key); on_disk && on_disk->is_object()) {
    committed = on_disk->value("generation", json());
  }
  for (const auto& [name, doc] : {std::pair{inc::kDependencyGraph, &graph}, std::pair{inc::kFileHashes, &files}}) {
    bool of_committed = false;
    if (known) {
      of_committed = known->current;
    } else if (committed) {
      auto current = dir.read(name, key);
      of_committed = current && current->is_object() && current->value("generation", json()) == *committed;
    }
    if (of_committed) {
      if (auto kept = dir.keep_previous(name); !kept) {
        return std::unexpected(fmt::format("{}: {}", name, kept.error()));
      }
    }
    if (auto written = dir.write(name, *doc, key); !written) {
      return std::unexpected(fmt::format("{}: {}", name, written.error()));
    }
  }
  if (auto written = dir.write(inc::kLastCompilation, last, key); !written) {
    return std::unexpected(fmt::format("{}: {}", inc::kLastCompilation, written.error()));
  }
  // What a read of these files would give, for the next compile.
  try {
    remember(dir, Recent{files_identity(dir, key),
                         std::make_shared<const CacheState>(state_from_json(last, files, graph)), true});
  } catch (const json::exception&) {
  }
  return {};
}

std::expected<CompileInfo, core::Error> materialize(const CacheState& s, const inc::ObjectStore& store,
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
    if (auto written = util::write_new_file(path, *bytes, 0644); !written) {
      return fail(written.error());
    }
    info.beam_bytes = info.beam_bytes.value_or(0) + bytes->size();
    info.beam_files.push_back(path);
    info.modules.push_back(module);
  }
  if (s.app) {
    auto bytes = store.get(s.app->second);
    if (!bytes) {
      return fail(bytes.error());
    }
    auto path = ebin / s.app->first;
    if (auto written = util::write_new_file(path, *bytes, 0644); !written) {
      return fail(written.error());
    }
    info.app_file = path;
  }
  return info;
}

bool objects_present(const CacheState& s, const inc::ObjectStore& store)
{
  for (const auto& [module, record] : s.modules) {
    if (!store.readable(record.beam_sha256)) {
      return false;
    }
  }
  return !s.app || store.readable(s.app->second);
}

} // namespace sandbox::compiler
