#pragma once
// What the confinement analysis (scan/confinement.h) learns from one file,
// internal to the scan layer: the modules it defines and its code cut into
// regions, each with the events the verdict needs (calls, `use`, hooks,
// causes that are never confined). confinement_walk.cpp reads Elixir into
// these through the scanner's syntax tree and resolver; confinement.cpp reads
// Erlang and decides, following calls from the code a compile runs into the
// submission's functions.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::scan::confinement {

enum class EventKind {
  call,         // module.function, resolved
  local_call,   // a bare call: a local function, an import or Kernel
  use,          // use Module
  require,      // require or import Module
  hook,         // @before_compile, @after_compile, @after_verify, @on_load
  derive,       // @derive Module
  implement,    // defimpl Protocol
  module_value, // a module written as a value: the standard library may call any of its functions
  problem,      // never confined: `text` says why
};

struct Event {
  EventKind kind = EventKind::problem;
  std::string module;
  std::string function;
  std::optional<std::uint32_t> arity;
  std::uint32_t line = 0;
  std::string context;              // "module body", "macro A.m", ...
  std::string text;                 // problem: what is done ("calls a function of a computed module")
  std::string current_module;       // local_call: the module it is written in
  std::vector<std::string> imports; // local_call: modules imported where it is written, innermost first
  bool quoted = false;              // written inside a quote (and not in an unquote of it)
};

// Code that runs as a unit: everything of a file that runs when the file is
// compiled (`compile_time`), or one function's clauses, which run when
// called.
struct Region {
  std::string file;
  std::string module;   // the function's module ("" for a file's compile-time region)
  std::string function; // its name; "" when computed (def unquote(name)(...))
  bool compile_time = false;
  bool macro = false;
  bool is_public = false;
  std::vector<Event> events;
};

struct DefinedModule {
  std::string name;
  std::uint32_t line = 0;
};

struct FileFacts {
  std::string file;
  std::vector<DefinedModule> modules;
  std::vector<Region> regions; // regions[0] is the file's compile-time region
};

// Reads one Elixir file. A file that does not parse cleanly gets a problem
// event: its code cannot be followed.
FileFacts collect_elixir_facts(const std::string& file, const std::string& source);

} // namespace sandbox::scan::confinement
