#pragma once
// The one rule table: which calls are dangerous, as which operation, how
// severe. The Elixir scanner, the Erlang scanner and the BEAM import audit all
// ask it, so a source call and the import it compiles to get the same verdict.
// docs/security.md is this table for people.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::scan {

enum class Severity { low, medium, high, critical };
std::string_view to_string(Severity severity);

// A module is named as the compile options name it: ":os" for an Erlang
// module, "System" for an Elixir one (never "Elixir.System").
struct Rule {
  std::string_view module;
  std::string_view function; // "*": every function of the module not listed
  std::string_view operation; // "" with Severity::low and safe = true: no finding
  Severity severity = Severity::low;
  bool safe = false;          // no effect outside the process: never reported
  bool path_argument = false; // the first argument is a file path
  // Checked whatever restricted_modules says (networking, distribution, NIF
  // loading, halting the VM: modules the specification's list omits).
  bool always = false;
  std::string_view message;
};

// Every rule, for docs and tests.
const std::vector<Rule>& rule_table();

// The rules that apply with a given restricted-module list.
class RuleSet {
public:
  RuleSet(std::vector<std::string> restricted_modules, std::vector<std::string> allowed_operations);

  // What a call of module.function is, or nullopt when it is not reported
  // (safe, unknown module, or not restricted). A restricted module without
  // rows in the table reports every call as "restricted_module".
  [[nodiscard]] std::optional<Rule> lookup(std::string_view module, std::string_view function) const;
  // True when the table has a row for exactly module.function (not "*"),
  // whether or not it is reported: how `import M` is matched to a bare call.
  [[nodiscard]] bool has_row(std::string_view module, std::string_view function) const;
  // True when some reported rule of `module` would match a computed function.
  [[nodiscard]] bool has_dangerous_functions(std::string_view module) const;
  // A function name any checked module makes dangerous (cmd, open_port, ...).
  [[nodiscard]] bool is_dangerous_function_name(std::string_view function) const;
  [[nodiscard]] bool allowed(std::string_view operation) const;
  [[nodiscard]] bool restricted(std::string_view module) const;

private:
  std::vector<std::string> m_restricted;
  std::vector<std::string> m_allowed;
};

// "Elixir.System" -> "System", "os" -> ":os" (a BEAM atom as a module name).
std::string module_from_atom(std::string_view atom);
// How a module is written in messages: "System", ":os".
std::string display_call(std::string_view module, std::string_view function,
                         std::optional<std::uint32_t> arity = std::nullopt);

} // namespace sandbox::scan
