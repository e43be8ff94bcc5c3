#include "incremental/graph.h"

#include <deque>

namespace sandbox::incremental {

std::map<std::string, std::string> DependencyGraph::owners() const
{
  std::map<std::string, std::string> out;
  for (const auto& [file, deps] : files) {
    for (const auto& module : deps.modules) {
      out.emplace(module, file);
    }
  }
  return out;
}

nlohmann::json to_json(const DependencyGraph& graph)
{
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [file, deps] : graph.files) {
    files[file] = {{"modules", deps.modules},
                   {"compile", deps.compile_refs},
                   {"export", deps.export_refs},
                   {"runtime", deps.runtime_refs},
                   {"imports", deps.imports},
                   {"reads", deps.reads},
                   {"reads_unknown", deps.reads_unknown},
                   {"dynamic_compile", deps.dynamic_compile},
                   {"source", deps.source}};
  }
  return {{"files", files}};
}

DependencyGraph graph_from_json(const nlohmann::json& json)
{
  DependencyGraph graph;
  for (const auto& [file, deps] : json.at("files").items()) {
    FileDeps d;
    d.modules = deps.at("modules").get<std::vector<std::string>>();
    d.compile_refs = deps.at("compile").get<std::set<std::string>>();
    d.export_refs = deps.at("export").get<std::set<std::string>>();
    d.runtime_refs = deps.at("runtime").get<std::set<std::string>>();
    d.imports = deps.at("imports").get<std::set<std::string>>();
    d.reads = deps.at("reads").get<std::set<std::string>>();
    d.reads_unknown = deps.at("reads_unknown").get<bool>();
    d.dynamic_compile = deps.at("dynamic_compile").get<bool>();
    d.source = deps.at("source").get<std::string>();
    graph.files.emplace(file, std::move(d));
  }
  return graph;
}

namespace {

bool intersects(const std::set<std::string>& a, const std::set<std::string>& b)
{
  for (const auto& item : a) {
    if (b.contains(item)) {
      return true;
    }
  }
  return false;
}

} // namespace

std::set<std::string> affected_files(const DependencyGraph& graph,
                                     const std::set<std::string>& code_changed,
                                     const std::set<std::string>& export_changed,
                                     const std::set<std::string>& macro_modules,
                                     const std::set<std::string>& exclude)
{
  // Modules whose code, when run, can reach changed code through runtime
  // references: the changed modules and, transitively, their runtime callers.
  std::set<std::string> reach = code_changed;
  std::deque<std::string> queue(code_changed.begin(), code_changed.end());
  std::map<std::string, std::vector<const FileDeps*>> runtime_callers;
  for (const auto& [file, deps] : graph.files) {
    for (const auto& ref : deps.runtime_refs) {
      runtime_callers[ref].push_back(&deps);
    }
  }
  while (!queue.empty()) {
    auto module = queue.front();
    queue.pop_front();
    auto found = runtime_callers.find(module);
    if (found == runtime_callers.end()) {
      continue;
    }
    for (const auto* caller : found->second) {
      for (const auto& m : caller->modules) {
        if (reach.insert(m).second) {
          queue.push_back(m);
        }
      }
    }
  }

  std::set<std::string> out;
  for (const auto& [file, deps] : graph.files) {
    if (exclude.contains(file)) {
      continue;
    }
    std::set<std::string> compile = deps.compile_refs;
    std::set<std::string> exports = deps.export_refs;
    for (const auto& imported : deps.imports) {
      (macro_modules.contains(imported) ? compile : exports).insert(imported);
    }
    if (intersects(compile, reach) || intersects(compile, export_changed) ||
        intersects(exports, export_changed) || (deps.dynamic_compile && !code_changed.empty())) {
      out.insert(file);
    }
  }
  return out;
}

std::set<std::string> readers_of(const DependencyGraph& graph, const std::string& changed_input)
{
  std::set<std::string> out;
  auto base = changed_input.substr(changed_input.rfind('/') + 1);
  for (const auto& [file, deps] : graph.files) {
    if (deps.reads_unknown) {
      out.insert(file);
      continue;
    }
    for (const auto& literal : deps.reads) {
      auto lit_base = literal.substr(literal.rfind('/') + 1);
      if (!lit_base.empty() && (lit_base == base || changed_input.ends_with(literal))) {
        out.insert(file);
        break;
      }
    }
  }
  return out;
}

} // namespace sandbox::incremental
