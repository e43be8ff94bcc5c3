#pragma once
// The one rule table: which calls are dangerous, as which operation, how
// severe. The Elixir scanner, the Erlang scanner and the BEAM import audit all
// ask it, so a source call and the import it compiles to get the same verdict.
// docs/security.md is this table for people.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sandbox::scan {

enum class Severity { low, medium, high, critical };
std::string_view to_string(Severity severity);

// A set of strings that can be asked with a string_view, without a copy.
struct WordHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using WordSet = std::unordered_set<std::string, WordHash, std::equal_to<>>;

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
  // The functions of `module` with a row of their own that a call reports as
  // a threat (severity above low): what a dynamic call can reach when the
  // module travels as a value (System: cmd, shell, halt, stop, ...). Empty
  // for a module that is not checked, and for a module known only by a "*"
  // row or by restricted_modules alone.
  [[nodiscard]] const std::vector<std::string>& value_flow_functions(std::string_view module) const;
  // A function some module's value_flow_functions lists.
  [[nodiscard]] bool is_value_flow_function(std::string_view function) const;
  // The strongest row, over every checked module, of a function the table
  // makes dangerous (is_dangerous_function_name): what a call of that name
  // on a module computed at run time can reach at worst.
  [[nodiscard]] std::optional<Rule> strongest_rule_named(std::string_view function) const;
  [[nodiscard]] bool allowed(std::string_view operation) const;
  [[nodiscard]] bool restricted(std::string_view module) const;

  // The vocabulary of findings, so code that uses none of it can be passed
  // over (scan/elixir_prefilter.h). A module matters when a call of it can be
  // reported, when it builds or applies modules (Module, String, List,
  // Kernel, Function, :erlang), or when it has functions that take M, F, A
  // (Task, Process, :proc_lib, :timer); a name also matters when it is the
  // first part of such a module ("Mix" of Mix.Shell).
  [[nodiscard]] bool module_matters(std::string_view module) const;
  // module.function can be reported, builds or applies a module, or takes M, F, A.
  [[nodiscard]] bool call_matters(std::string_view module, std::string_view function) const;
  // An identifier that can be reported wherever it is written: apply,
  // on_load, a dangerous function name (x.cmd(...)), a reported Kernel
  // function called bare (spawn).
  [[nodiscard]] bool identifier_matters(std::string_view word) const;
  // The functions with a row of their own for `module` (what a bare call
  // after `import module` can reach).
  [[nodiscard]] std::vector<std::string_view> functions_with_rows(std::string_view module) const;
  // False when `word` (not empty) is certainly neither a module word nor an
  // identifier that matters: a cheap test before the set lookups.
  [[nodiscard]] bool may_be_vocabulary(std::string_view word) const;
  // A word naming a module that matters: the first part of an Elixir module
  // ("System", "Mix") or an Erlang module without its colon ("os").
  [[nodiscard]] bool module_word(std::string_view word) const;

private:
  std::vector<std::string> m_restricted;
  std::vector<std::string> m_allowed;
  WordSet m_module_prefixes; // every module that matters, and "Mix" of Mix.Shell
  WordSet m_module_words;
  WordSet m_identifiers;
  WordSet m_dangerous;
  std::unordered_map<std::string, std::vector<std::string>, WordHash, std::equal_to<>> m_value_flow;
  WordSet m_value_flow_names;
  std::array<std::uint64_t, 256> m_shapes{}; // first character -> bit per word length
};

// A function that takes a module, a function name and an argument list and
// calls them elsewhere or later: in a new process (spawn/3, :proc_lib),
// in a task or an agent, from a timer, on a node (:rpc, :erpc). The call
// happens inside OTP, so neither the source nor the bytecode shows it: the
// scanners and the audit judge the module and function it is given as they
// judge apply(M, F, A)'s. Modules are named as the compile options name them
// (Kernel for spawn/3 written bare, :erlang for what it compiles to).
struct MfaCall {
  std::string_view module;
  std::string_view function;
  std::uint32_t arity = 0;
  std::uint32_t module_argument = 0; // index of M; F and A are the next two
  std::uint32_t prepended = 0;       // arguments the callee gets before A's (Agent.get/4: the state)
  std::string_view where;            // when or where it calls, for messages: "in a new process"
};

// Every function that takes M, F, A, for docs and tests.
const std::vector<MfaCall>& mfa_call_table();
// The row of module.function/arity, or nullptr when it takes no M, F, A.
const MfaCall* find_mfa_call(std::string_view module, std::string_view function, std::uint32_t arity);
// The functions of `module` that take M, F, A at some arity (what a bare
// call after `import module` can reach).
std::vector<std::string_view> mfa_call_functions(std::string_view module);
// True when module.function takes M, F, A at some arity.
bool takes_mfa(std::string_view module, std::string_view function);

// True when module.function makes an atom or module name from data
// (Module.concat, String.to_atom, :erlang.binary_to_atom, ...).
bool builds_module_name(std::string_view module, std::string_view function);

// "Elixir.System" -> "System", "os" -> ":os" (a BEAM atom as a module name).
std::string module_from_atom(std::string_view atom);
// How a module is written in messages: "System", ":os".
std::string display_call(std::string_view module, std::string_view function,
                         std::optional<std::uint32_t> arity = std::nullopt);

} // namespace sandbox::scan
