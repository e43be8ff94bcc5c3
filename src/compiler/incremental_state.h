#pragma once
// The state an incremental compile leaves for the next one: the records of
// file_hashes.json, last_compilation.json and dependency_graph.json, how they
// are read (only the committed generation) and written (last_compilation.json
// last, committing it), and how a state's BEAMs come back out of the store.

#include "compiler/isolated_compiler.h"
#include "incremental/graph.h"
#include "incremental/store.h"
#include "incremental/tree_stamps.h"

#include <cstdint>
#include <expected>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::compiler {

struct ModuleRecord {
  std::string file; // source defining it; empty when unattributed
  std::string beam_sha256;
  std::string md5;           // beam_lib:md5: decides whether dependents recompile
  std::string export_digest; // exports and defstruct: decides for export dependents
  bool has_macros = false;   // an import of it is a compile-time reference
};

struct FileRecord {
  std::map<std::string, std::string> functions; // "def name/arity" -> digest
  std::string ast_digest;
};

struct CacheState {
  std::string generation; // shared by the three files; last_compilation.json commits it
  std::int64_t recorded_at_ns = 0;
  incremental::TreeStamps stamps;
  std::map<std::string, FileRecord> sources;
  std::string fingerprint;
  std::string compiler;
  std::map<std::string, ModuleRecord> modules; // "Elixir.Foo" -> record
  std::optional<std::pair<std::string, std::string>> app; // file name, sha256
  incremental::DependencyGraph graph;
  bool unattributed = false; // a module no source accounts for: partial compiles are unsound
  std::string strategy;
  std::int64_t compilation_time_ms = 0;
  std::vector<std::string> changed_files;
  // The result's dependencies (compile_job.h, dependencies_record).
  nlohmann::json dependencies = nlohmann::json::array();
};

// "Elixir.Foo" -> "Foo": the graph speaks Elixir names, BEAMs atoms.
std::string elixir_name(const std::string& beam_module);

// The state of the generation last_compilation.json names (the current graph
// and hashes, or the kept .previous ones), or nullptr with the reason in
// `warnings`. Shared: a long-running engine hands out the state it keeps.
std::shared_ptr<const CacheState> load_state(const incremental::CacheDir& dir, const std::string& key,
                                     std::vector<std::string>& warnings);
std::expected<void, std::string> save_state(const incremental::CacheDir& dir, const std::string& key,
                                            const CacheState& state);

// A fresh marked temp dir holding the state's BEAMs (and .app), read from the
// store: callers never see the store's own files.
std::expected<CompileInfo, core::Error> materialize(const CacheState& state,
                                                    const incremental::ObjectStore& store,
                                                    const core::CompileOptions& options);
bool objects_present(const CacheState& state, const incremental::ObjectStore& store);

} // namespace sandbox::compiler
