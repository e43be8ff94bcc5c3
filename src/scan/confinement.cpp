// The confinement verdict (scan/confinement.h): the regions of every file
// (scan/confinement_facts.h) are one graph; the code a compile runs (each
// file's compile-time region, every macro, protocol implementations) is
// followed into the submission's functions it calls, and every event met on
// the way is judged against the allowlist (confinement_table.cpp).

#include "scan/confinement.h"

#include "scan/confinement_facts.h"
#include "scan/erlang_scanner.h"
#include "scan/rules.h"

#include <fmt/format.h>

#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <utility>

namespace sandbox::scan {

namespace {

using confinement::Event;
using confinement::EventKind;
using confinement::FileFacts;
using confinement::Region;

// Erlang runs code while compiling only through parse transforms (asked
// for by -compile, possibly through a macro or an included header), and when
// loading through -on_load; the rest of a .erl is functions. `headers` are
// the file names of the submission's .hrl files.
FileFacts collect_erlang_facts(const std::string& file, const std::string& source,
                               const std::set<std::string>& headers)
{
  FileFacts facts;
  facts.file = file;
  facts.regions.push_back(Region{file, "", "", true, false, false, {}});
  auto tokens = tokenize_erlang(source);
  using Kind = ErlangToken::Kind;
  auto fail = [&](const ErlangToken& at, std::string text) {
    Event event;
    event.line = at.line;
    event.text = std::move(text);
    facts.regions[0].events.push_back(std::move(event));
  };
  bool form_start = true;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto& token = tokens[i];
    bool at_start = form_start;
    form_start = token.kind == Kind::end_of_form;
    if (token.kind == Kind::atom && token.value == "parse_transform") {
      fail(token, "asks for a parse transform, which runs while compiling");
      continue;
    }
    if (!at_start || token.kind != Kind::punct || token.text != "-" || i + 3 >= tokens.size() ||
        tokens[i + 1].kind != Kind::atom) {
      continue;
    }
    const auto& name = tokens[i + 1].value;
    const auto& argument = tokens[i + 3];
    if (name == "module" && argument.kind == Kind::atom) {
      facts.modules.push_back({":" + argument.value, token.line});
    } else if (name == "on_load") {
      fail(token, "-on_load runs code when the module is loaded");
    } else if (name == "include" || name == "include_lib") {
      auto path = argument.kind == Kind::string ? argument.value : std::string(argument.text);
      bool ours = name == "include" && headers.contains(std::filesystem::path(path).filename().string());
      if (!ours && !(name == "include_lib" && confinement_allows(Permit::include, path))) {
        fail(token, fmt::format("-{}(\"{}\") reads a header that is neither the submission's nor an allowed "
                                "standard-library one",
                                name, path));
      }
    }
  }
  return facts;
}

// Why a function region runs while compiling: the region and line that reached it.
struct Origin {
  std::size_t region = 0;
  std::uint32_t line = 0;
};

class Analysis {
public:
  Analysis(std::vector<FileFacts>& files, const std::set<std::string>& defined)
      : m_defined(defined)
  {
    std::vector<bool> root;
    for (auto& file : files) {
      for (auto& region : file.regions) {
        root.push_back(&region == &file.regions.front()); // a file's compile-time region
        m_regions.push_back(std::move(region));
      }
    }
    m_origin.resize(m_regions.size());
    m_queued.resize(m_regions.size(), false);
    for (std::size_t i = 0; i < m_regions.size(); ++i) {
      const auto& region = m_regions[i];
      if (root[i]) continue;
      if (region.function.empty()) {
        m_computed[region.module].push_back(i);
      } else {
        m_by_key[{region.module, region.function}].push_back(i);
        m_by_name[region.function].push_back(i);
      }
      if (region.is_public) m_public[region.module].push_back(i);
    }
  }

  // The first cause found, or nullopt when everything reached is allowed.
  std::optional<std::string> run()
  {
    for (std::size_t i = 0; i < m_regions.size(); ++i) {
      if (m_regions[i].compile_time) enqueue(i, std::nullopt);
    }
    while (!m_queue.empty()) {
      auto index = m_queue.front();
      m_queue.pop_front();
      for (const auto& event : m_regions[index].events) {
        if (auto reason = judge(index, event)) return reason;
      }
    }
    return std::nullopt;
  }

private:
  void enqueue(std::size_t index, std::optional<Origin> origin)
  {
    if (m_queued[index]) return;
    m_queued[index] = true;
    m_origin[index] = origin;
    m_queue.push_back(index);
  }
  void reach(const std::vector<std::size_t>& indices, std::size_t from, const Event& event)
  {
    for (auto index : indices) enqueue(index, Origin{from, event.line});
  }
  bool reach_key(const std::string& module, const std::string& function, std::size_t from, const Event& event)
  {
    auto it = m_by_key.find({module, function});
    if (it == m_by_key.end()) return false;
    reach(it->second, from, event);
    return true;
  }
  // A function of a submission module the module does not define: a
  // definition written in a quote or with a computed name may be it.
  void reach_unknown(const std::string& module, const std::string& function, std::size_t from, const Event& event)
  {
    if (auto it = m_by_name.find(function); it != m_by_name.end()) reach(it->second, from, event);
    if (auto it = m_computed.find(module); it != m_computed.end()) reach(it->second, from, event);
  }

  [[nodiscard]] std::string shown(const std::string& module, const std::string& function) const
  {
    return module.empty() ? function : fmt::format("{}.{}", module, function);
  }

  // "lib/a.ex:3: <context> <what> (runs while compiling: reached from ...)"
  [[nodiscard]] std::string fail(std::size_t index, const Event& event, const std::string& what) const
  {
    auto out = event.context.empty()
                 ? fmt::format("{}:{}: {}", m_regions[index].file, event.line, what)
                 : fmt::format("{}:{}: {} {}", m_regions[index].file, event.line, event.context, what);
    if (!m_origin[index]) return out;
    // Back to the compile-time region the calls start from.
    std::vector<std::string> chain;
    std::size_t at = index;
    std::uint32_t line = 0;
    for (int guard = 0; m_origin[at] && guard < 64; ++guard) {
      chain.push_back(shown(m_regions[at].module, m_regions[at].function));
      line = m_origin[at]->line;
      at = m_origin[at]->region;
    }
    std::string through;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) through += (through.empty() ? "" : " -> ") + *it;
    return fmt::format("{} (runs while compiling: called from {}:{} through {})", out, m_regions[at].file, line,
                       through);
  }

  [[nodiscard]] bool defined(const std::string& module) const { return m_defined.contains(module); }

  std::optional<std::string> judge(std::size_t index, const Event& event)
  {
    const auto& module = event.module;
    switch (event.kind) {
    case EventKind::problem:
      return fail(index, event, event.text);
    case EventKind::call:
      if (defined(module)) {
        if (!reach_key(module, event.function, index, event)) reach_unknown(module, event.function, index, event);
        return std::nullopt;
      }
      if (confinement_allows(Permit::call, module, event.function)) return std::nullopt;
      return fail(index, event, "calls " + describe_call(module, event.function, event.arity));
    case EventKind::local_call:
      return judge_local(index, event);
    case EventKind::use:
      if (defined(module)) {
        reach_key(module, "__using__", index, event);
        return std::nullopt;
      }
      if (confinement_allows(Permit::use, module)) return std::nullopt;
      return fail(index, event,
                  fmt::format("uses {}, whose __using__ macro is neither the submission's nor an allowed "
                              "standard-library one",
                              module));
    case EventKind::require:
      if (defined(module) || confinement_allows(Permit::require, module)) return std::nullopt;
      return fail(index, event,
                  fmt::format("requires or imports {}, which is neither the submission's nor in the allowlist",
                              module));
    case EventKind::hook:
      if (defined(module)) {
        if (!reach_key(module, event.function, index, event)) reach_unknown(module, event.function, index, event);
        return std::nullopt;
      }
      return fail(index, event,
                  fmt::format("has {} run {}, which is not the submission's", event.text,
                              shown(module, event.function)));
    case EventKind::derive:
      if (defined(module) || confinement_allows(Permit::derive, module)) return std::nullopt;
      return fail(index, event, fmt::format("derives {}, which is neither the submission's nor allowed", module));
    case EventKind::implement:
      if (defined(module) || confinement_allows(Permit::implement, module)) return std::nullopt;
      return fail(index, event,
                  fmt::format("implements the protocol {}, which is neither the submission's nor a "
                              "standard-library one",
                              module));
    case EventKind::module_value:
      if (auto it = m_public.find(module); it != m_public.end()) reach(it->second, index, event);
      return std::nullopt;
    }
    return std::nullopt;
  }

  [[nodiscard]] static std::string describe_call(const std::string& module, const std::string& function,
                                                 std::optional<std::uint32_t> arity)
  {
    auto call = display_call(module, function, arity);
    const auto* row = find_confinement_rule(Permit::call, module, function);
    if (row != nullptr && !row->allowed) return fmt::format("{} ({})", call, row->why);
    return call;
  }

  // A bare call: a function of the module it is written in, a Kernel
  // function (which an import cannot shadow), an import of the submission's,
  // an import of an allowed module, or a function the submission defines in
  // a quote or under a computed name.
  std::optional<std::string> judge_local(std::size_t index, const Event& event)
  {
    const auto& name = event.function;
    if (!event.current_module.empty() && reach_key(event.current_module, name, index, event)) return std::nullopt;
    if (const auto* row = find_confinement_rule(Permit::call, "Kernel", name)) {
      if (row->allowed) return std::nullopt;
      return fail(index, event, "calls " + describe_call("Kernel", name, event.arity));
    }
    for (const auto& import : event.imports) {
      if (defined(import) && reach_key(import, name, index, event)) return std::nullopt;
    }
    for (const auto& import : event.imports) {
      if (!defined(import) && confinement_allows(Permit::call, import, name)) return std::nullopt;
    }
    bool found = m_by_name.contains(name) || m_computed.contains(event.current_module);
    if (found) {
      reach_unknown(event.current_module, name, index, event);
      return std::nullopt;
    }
    // Quoted code is data until a macro injects it, and a bare call in it
    // resolves where it lands: to the caller's functions or imports (every
    // import of the submission is judged) or to Kernel (judged above).
    if (event.quoted) return std::nullopt;
    auto call = event.arity ? fmt::format("{}/{}", name, *event.arity) : name;
    return fail(index, event,
                fmt::format("calls {}, which is neither the submission's nor an allowed function", call));
  }

  const std::set<std::string>& m_defined;
  std::vector<Region> m_regions;
  std::vector<std::optional<Origin>> m_origin;
  std::vector<bool> m_queued;
  std::deque<std::size_t> m_queue;
  std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> m_by_key;
  std::map<std::string, std::vector<std::size_t>> m_by_name;
  std::map<std::string, std::vector<std::size_t>> m_computed;
  std::map<std::string, std::vector<std::size_t>> m_public;
};

} // namespace

ConfinementVerdict classify_confinement(const std::vector<SourceFile>& files,
                                        const std::set<std::string>& loaded_modules)
{
  ConfinementVerdict verdict;
  std::vector<FileFacts> facts;
  std::set<std::string> headers;
  for (const auto& file : files) {
    std::filesystem::path path(file.path);
    if (path.extension() == ".hrl") headers.insert(path.filename().string());
  }
  for (const auto& file : files) {
    auto extension = std::filesystem::path(file.path).extension().string();
    if (extension == ".ex" || extension == ".exs") {
      facts.push_back(confinement::collect_elixir_facts(file.path, file.text));
    } else if (extension == ".erl" || extension == ".hrl") {
      facts.push_back(collect_erlang_facts(file.path, file.text, headers));
    }
  }
  std::set<std::string> loaded;
  for (const auto& name : loaded_modules) loaded.insert(normalize_module_name(name));
  std::set<std::string> defined;
  std::optional<std::string> reason;
  for (const auto& file : facts) {
    for (const auto& module : file.modules) {
      verdict.modules.push_back(module.name);
      defined.insert(module.name);
      if (!reason && (loaded.contains(module.name) || confinement_knows_module(module.name))) {
        reason = fmt::format("{}:{}: defines {}, a module the compiling VM already has", file.file, module.line,
                             module.name);
      }
    }
  }
  if (!reason) reason = Analysis(facts, defined).run();
  verdict.confined = !reason;
  if (reason) verdict.reason = std::move(*reason);
  return verdict;
}

} // namespace sandbox::scan
