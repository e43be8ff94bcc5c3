#pragma once
// The dependency graph between a sandbox's source files, and which files a
// change makes stale. The rules are Mix's (lib/mix/lib/mix/compilers/elixir.ex)
// keyed on compiled code rather than on source text:
//  - a file with a compile-time reference to a module whose compiled code
//    changed is recompiled, and so is one with a compile-time reference to a
//    module that reaches a changed module through runtime references
//    ("compile-connected": the referenced code runs while the file compiles);
//  - a file with an export reference (struct, import of a module without
//    macros) is recompiled when that module's exports changed;
//  - runtime references alone never recompile.

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace sandbox::incremental {

struct FileDeps {
  std::vector<std::string> modules;
  std::set<std::string> compile_refs;
  std::set<std::string> export_refs;
  std::set<std::string> runtime_refs;
  std::set<std::string> imports;
  std::set<std::string> reads;
  bool reads_unknown = false;
  bool dynamic_compile = false;
  std::string source = "source_analysis"; // or "compiler_references"
};

struct DependencyGraph {
  std::map<std::string, FileDeps> files; // relative path -> dependencies

  // module -> file defining it
  [[nodiscard]] std::map<std::string, std::string> owners() const;
};

nlohmann::json to_json(const DependencyGraph& graph);
DependencyGraph graph_from_json(const nlohmann::json& json); // throws nlohmann::json::exception

// Files to recompile because the modules in `code_changed` (compiled code
// differs, or forced) and `export_changed` (exports differ) changed.
// `macro_modules` are the modules that export macros (an import of one is a
// compile-time reference). Files in `exclude` are left out.
std::set<std::string> affected_files(const DependencyGraph& graph,
                                     const std::set<std::string>& code_changed,
                                     const std::set<std::string>& export_changed,
                                     const std::set<std::string>& macro_modules,
                                     const std::set<std::string>& exclude = {});

// Files that read `changed_input` (relative path) at compile time: a literal
// path naming it, or a compile-time read whose path is not a literal.
std::set<std::string> readers_of(const DependencyGraph& graph, const std::string& changed_input);

} // namespace sandbox::incremental
