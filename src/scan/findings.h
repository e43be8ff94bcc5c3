#pragma once
// What the scanner reports: the specification's finding shape, and the
// collector every scanner (Elixir, Erlang, BEAM audit) reports into.

#include "core/options.h"
#include "scan/rules.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::scan {

// Where the code of a finding runs, which decides whether it can be a threat
// to a host (docs/security.md, "Where code runs decides what is a threat").
// host: it becomes a BEAM a host may load and call. jail: it runs only inside
// the compile's jail (mix.exs, config, scripts, tests, files no backend
// compiles). mix: a Mix task, which only Mix runs, never a host that loads
// the BEAMs.
enum class RunsIn { host, jail, mix };
std::string_view to_string(RunsIn where);

// A second place a finding rests on. A value_flow finding is placed at the
// dynamic call; its related place is where the module is used as a value
// (in a BEAM: line 0, and `matched_text` names the atom or literal).
struct RelatedPlace {
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string matched_text;
  std::string what; // "module used as a value", ...
};

struct Finding {
  std::string type; // dangerous_operation, host_path_access, dynamic_dispatch, value_flow, ...
  Severity severity = Severity::low;
  std::string operation;
  std::string file; // relative to the sandbox
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string message;
  std::string surrounding_code;
  std::string matched_text;
  // The resolved call, where there is one (always for the BEAM audit).
  std::optional<std::string> module;
  std::optional<std::string> function;
  std::optional<std::uint32_t> arity;
  RunsIn runs_in = RunsIn::host;
  std::optional<RelatedPlace> related;
};

struct ScanResult {
  std::vector<Finding> threats;  // severity medium and above
  std::vector<Finding> warnings; // severity low
  std::uint64_t files_scanned = 0;
  std::uint64_t bytes_scanned = 0;
  std::uint64_t beams_audited = 0;
  int scan_depth = 0;
};

nlohmann::json to_json(const Finding& finding);
nlohmann::json to_json(const ScanResult& result);
nlohmann::json to_json(const std::vector<Finding>& findings);
// The inverse of to_json(ScanResult), for results kept on disk; nullopt when
// `value` is not such a result.
std::optional<ScanResult> result_from_json(const nlohmann::json& value);

struct ScanConfig {
  std::vector<std::string> restricted_modules;
  std::vector<std::string> allowed_operations;
  // Levels of indirection followed when resolving which module a call
  // reaches: an alias, an import, a variable or attribute holding a module,
  // apply/3, a module built from constants each cost one level. Literal
  // calls (System.cmd, :os.cmd, :"Elixir.System".cmd) cost none.
  int scan_depth = 3;
  // compiled: findings in code that never runs in a host are warnings.
  core::ScanScope scope = core::ScanScope::compiled;
};

// Collects findings for one scan: drops those whose operation is allowed,
// sorts the rest into threats (medium and above) and warnings (low).
class Report {
public:
  explicit Report(const ScanConfig& config);

  [[nodiscard]] const RuleSet& rules() const { return m_rules; }
  [[nodiscard]] int scan_depth() const { return m_depth; }
  [[nodiscard]] core::ScanScope scope() const { return m_scope; }
  // With scope compiled, a finding whose code does not run in a host
  // (runs_in jail or mix) is reported as a warning, its severity in the
  // message.
  void add(Finding finding);
  // Where the code of the file being scanned runs: jail for a file no
  // backend compiles, which every finding of the file then carries.
  void set_file_runs_in(RunsIn where) { m_file_runs_in = where; }
  [[nodiscard]] RunsIn file_runs_in() const { return m_file_runs_in; }
  ScanResult& result() { return m_result; }

private:
  RuleSet m_rules;
  int m_depth;
  core::ScanScope m_scope;
  RunsIn m_file_runs_in = RunsIn::host;
  ScanResult m_result;
};

// Lines line-1 .. line+1 of `source` (each capped), for a finding's context.
std::string surrounding_lines(std::string_view source, std::uint32_t line);
// The matched text, on one line and capped.
std::string clip(std::string_view text, std::size_t max = 200);

} // namespace sandbox::scan
