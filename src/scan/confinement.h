#pragma once
// Confinement: whether compiling a submission can leave anything behind in
// the VM that compiles it, decided from the source before the compile.
//
// Compiling Elixir runs code: module bodies, attribute values, macros, the
// submission's functions those call, `use` of the submission's own modules,
// @before_compile/@after_compile/@after_verify/@on_load hooks, unquote
// fragments. A submission is confined when all of that calls only the pure
// functions of the allowlist below, and the modules it defines are not
// already loaded in the compiling VM. Anything the source does not settle
// (a call through a computed module, an external macro, an atom built from
// data) is not confined. docs/security.md, "Confinement", describes it.

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::scan {

// One file of a submission: its path as messages should name it (relative
// to the sandbox) and its text. The language comes from the extension:
// .ex/.exs are Elixir, .erl Erlang, .hrl an Erlang header (read for parse
// transforms it asks for); anything else is ignored.
struct SourceFile {
  std::string path;
  std::string text;
};

struct ConfinementVerdict {
  bool confined = false;
  // Empty when confined; else the first cause found, naming file:line and
  // the call: "lib/a.ex:3: module body calls System.cmd/2".
  std::string reason;
  // Every module the submission defines, as the scanner names modules
  // ("A.B" for Elixir, ":a" for Erlang), in the order they are written.
  std::vector<std::string> modules;
};

// Classifies the files as one submission. `loaded_modules` names the modules
// the compiling VM already has, loaded or on its code path, either as BEAM
// atoms ("Elixir.Enum", "lists") or as the scanner writes them ("Enum",
// ":lists"); a module the allowlist names counts as loaded whatever the set
// says. A submission that defines one of them is not confined.
ConfinementVerdict classify_confinement(const std::vector<SourceFile>& files,
                                        const std::set<std::string>& loaded_modules);

// --- the allowlist ----------------------------------------------------------

// What a row permits: a call made while compiling, `use M` (M.__using__ is
// standard-library code the VM already has), `require M`/`import M`,
// `@derive M`, `defimpl M` (implementing a standard-library protocol), or an
// Erlang `-include_lib` of a standard-library header (the module column
// holds its path).
enum class Permit { call, use, require, derive, implement, include };

// One row. Modules are written as the scanner writes them ("String",
// ":lists"). `function` is "*" for every function of the module without a
// row of its own; use/require/derive/implement rows always say "*".
// `allowed` false rows are there to be explicit: a call without any row is
// not allowed either.
struct ConfinementRule {
  Permit permit = Permit::call;
  std::string_view module;
  std::string_view function;
  bool allowed = false;
  std::string_view why;
};

// Every row, for docs and tests.
const std::vector<ConfinementRule>& confinement_table();

// The row deciding `permit` for module.function: the exact row, else the
// module's "*" row, else nullptr (not allowed).
const ConfinementRule* find_confinement_rule(Permit permit, std::string_view module, std::string_view function);

// True when the row deciding module.function allows it.
bool confinement_allows(Permit permit, std::string_view module, std::string_view function = "*");

// True when some row names `module` (a standard-library module the worker
// has, which a submission must not redefine).
bool confinement_knows_module(std::string_view module);

// "Elixir.Enum" -> "Enum", "lists" -> ":lists"; "Enum" and ":lists" stay.
std::string normalize_module_name(std::string_view name);

} // namespace sandbox::scan
