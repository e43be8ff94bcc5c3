#pragma once
// The walk of one Elixir syntax tree behind scan_elixir_source
// (scan/elixir_scanner.h), internal to the scan layer. It visits the named
// nodes in order, resolves which module each call reaches
// (scan/elixir_resolver.h) and asks the rule table; what a call on a module
// not known statically may reach is judged for the whole file at the end
// (scan/value_flow.h).
//
// Its definitions are split by concern: the walk and the calls
// (elixir_walker.cpp), the value-flow bookkeeping (elixir_walker_flow.cpp),
// and the building of findings with their positions and where their code
// runs (elixir_walker_report.cpp).

#include "scan/elixir_resolver.h"
#include "scan/findings.h"
#include "scan/rules.h"
#include "scan/value_flow.h"
#include "syntax/elixir_tree.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::scan::elixir {

// The namespace of Mix tasks: `mix name` runs Mix.Tasks.Name.run/1.
inline constexpr std::string_view kMixTasks = "Mix.Tasks.";

class Walker {
public:
  Walker(std::string_view file, const syntax::Tree& tree, const Report& report);

  void run();

  std::vector<Finding>& findings() { return m_findings; }
  // Names bound to a module that matters (aliases, variables, attributes,
  // __MODULE__) and functions an import of one makes callable bare: code
  // using them can be reported wherever it is.
  [[nodiscard]] const WordSet& bound_names() const { return m_resolver.bound_names(); }

private:
  // --- the walk and the calls (elixir_walker.cpp) ---------------------------
  void finish();
  [[nodiscard]] Node parent_of(const Node& node) const;
  bool enter(const Node& node);
  void handle_unary(const Node& node);
  static std::optional<std::uint32_t> parse_arity(const Node& node);
  [[nodiscard]] std::optional<std::uint32_t> call_arity(const Node& call, std::size_t arg_count,
                                                      bool has_args) const;
  void handle_call(const Node& node);
  void mark_head(const std::vector<Node>& args);
  void handle_defdelegate(const Node& node, const std::vector<Node>& args);
  void handle_apply(const Node& node, const std::vector<Node>& args, std::string_view how);
  void handle_mfa_call(const Node& node, const std::string& module, std::string_view function,
                       std::optional<std::uint32_t> arity, const std::vector<Node>& args);
  void judge_mfa(const Node& node, const Node& module_arg, const Node& function_arg, const Node& args_arg,
                 std::uint32_t prepended, std::string_view how, std::string_view where, int nested = 0);
  static bool is_host_path(const Node& node, int guard = 0);
  void check_call(const Node& node, const Resolved& module, std::string_view function,
                  std::optional<std::uint32_t> arity, const std::vector<Node>& args,
                  std::string_view how);

  // --- value flow (elixir_walker_flow.cpp) ----------------------------------
  ValueFlow::Place place_of(std::size_t i, const Resolved& value) const;
  [[nodiscard]] std::optional<int> judged_argument(const Node& call, bool piped) const;
  [[nodiscard]] bool piped_into(std::size_t j) const;
  [[nodiscard]] bool judged_position(std::size_t i) const;
  void note_value(std::size_t i, const Resolved& value);
  void note_atom(const Node& node);
  void note_builder(const Node& call);
  void note_dynamic_call(const Node& node, std::optional<std::string> function, std::optional<std::uint32_t> arity,
                         std::string call, std::optional<std::string> warning);
  void resolve_value_flow();
  [[nodiscard]] Severity dynamic_severity(const std::optional<std::string>& function) const;

  // --- findings and positions (elixir_walker_report.cpp) --------------------
  static std::string upper(Severity severity);
  void report_dynamic(const Node& node, Severity severity, std::string message);
  Finding make(const Node& node, std::string type, std::string operation, Severity severity,
               std::string message);
  void report(const Node& node, std::string type, std::string operation, Severity severity,
              std::string message, std::optional<std::string> module,
              std::optional<std::string> function, std::optional<std::uint32_t> arity);
  [[nodiscard]] RunsIn code_runs_in() const;
  void fill_position(Finding& finding, const Node& node);

  std::string_view m_file;
  const syntax::Tree& m_tree;
  const RuleSet& m_rules;
  int m_depth;
  core::ScanScope m_scope;
  RunsIn m_file_runs_in;
  std::set<std::pair<std::uint32_t, std::uint32_t>> m_heads;
  std::optional<Node> m_first_error;
  std::vector<Node> m_path;
  std::vector<Finding> m_findings;
  Resolver m_resolver;
  ValueFlow m_flow;
  std::vector<std::pair<std::size_t, ValueFlow::Call>> m_dynamic_calls; // index of its finding in m_findings
};

} // namespace sandbox::scan::elixir
