// The findings of the Elixir walk (scan/elixir_walker.h): how one is built,
// its position and the lines around it, and where the code it is about runs.

#include "scan/elixir_walker.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <utility>

namespace sandbox::scan::elixir {

std::string Walker::upper(Severity severity)
{
  std::string out(to_string(severity));
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

void Walker::report_dynamic(const Node& node, Severity severity, std::string message)
{
  report(node, "dynamic_dispatch", "dynamic_dispatch", severity, std::move(message), std::nullopt,
         std::nullopt, std::nullopt);
}

Finding Walker::make(const Node& node, std::string type, std::string operation, Severity severity,
                     std::string message)
{
  Finding finding;
  finding.type = std::move(type);
  finding.operation = std::move(operation);
  finding.severity = severity;
  finding.message = std::move(message);
  finding.runs_in = code_runs_in();
  fill_position(finding, node);
  return finding;
}

void Walker::report(const Node& node, std::string type, std::string operation, Severity severity,
                    std::string message, std::optional<std::string> module,
                    std::optional<std::string> function, std::optional<std::uint32_t> arity)
{
  auto finding = make(node, std::move(type), std::move(operation), severity, std::move(message));
  finding.module = std::move(module);
  finding.function = std::move(function);
  finding.arity = arity;
  m_findings.push_back(std::move(finding));
}

// Where the node being visited runs: mix inside the do block of a
// `defmodule Mix.Tasks.*`, host anywhere else. Code in a quote lands in
// whatever module unquotes it, and a defimpl or defprotocol inside a task
// is a module of its own that protocol dispatch reaches from any caller:
// both are host code. A defmodule written without a do block (`, do:`) is
// not told apart, so its code counts as host code too.
RunsIn Walker::code_runs_in() const
{
  for (std::size_t i = m_path.size(); i-- > 0;) {
    const auto& node = m_path[i];
    if (node.type() != "call") continue;
    if (type_is_call_named(node, "quote") || type_is_call_named(node, "defimpl") ||
        type_is_call_named(node, "defprotocol")) {
      return RunsIn::host;
    }
    if (!type_is_call_named(node, "defmodule")) continue;
    bool in_do_block = i + 1 < m_path.size() && m_path[i + 1].type() == "do_block";
    return in_do_block && m_resolver.current_module().starts_with(kMixTasks) ? RunsIn::mix : RunsIn::host;
  }
  return RunsIn::host;
}

void Walker::fill_position(Finding& finding, const Node& node)
{
  auto pos = node.start();
  finding.file = std::string(m_file);
  finding.line = pos.line;
  finding.column = pos.column;
  finding.matched_text = clip(node.text());
  std::string around;
  for (auto line = pos.line > 1 ? pos.line - 1 : 1; line <= pos.line + 1; ++line) {
    auto text = m_tree.line(line);
    if (line > pos.line && text.empty()) break;
    if (!around.empty()) around += '\n';
    around += text.size() > 240 ? std::string(text.substr(0, 240)) + "..." : std::string(text);
  }
  finding.surrounding_code = std::move(around);
}

} // namespace sandbox::scan::elixir
