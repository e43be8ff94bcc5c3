#pragma once
// The value-flow rule the source scanners share (docs/security.md, "What the
// scanner follows, approximates and cannot see").
//
// A module that travels as a value (in a list, a map, a default argument, a
// closure, the process dictionary) reaches a call `m.cmd(...)` through data
// flow the resolver does not follow. So a file is judged as a whole: a
// module of the rule table used as a value anywhere, and a call on a module
// not known statically that names one of that module's functions reported
// above low, make a value_flow finding of that function's severity. A call
// of a computed function pairs with a module and one of its functions
// written together ({System, :cmd}). A module computed at run time
// (String.to_atom(x), Module.concat([x]), list_to_atom(X)) and a call naming
// a function the table makes dangerous on any module count the same.
//
// A scanner notes what it meets as it walks the file and asks judge() for
// each dynamic call once the walk is over.

#include "scan/findings.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::scan {

class ValueFlow {
public:
  // A place of the file.
  struct Place {
    std::uint32_t line = 0;
    std::uint32_t column = 0;
    std::string text;
    int hops = 0;    // levels of indirection that resolved the value
    std::string via; // how it was resolved, for the message
    // What the value is written in together with others (a tuple, list,
    // map or argument list: its start and end), or {0, 0}.
    std::pair<std::uint32_t, std::uint32_t> group{0, 0};
  };

  // A call on a module not known statically.
  struct Call {
    std::optional<std::string> function; // nullopt: the function is computed too
    std::optional<std::uint32_t> arity;
    std::string text; // how it is written, for the message
  };

  explicit ValueFlow(const RuleSet& rules) : m_rules(rules) {}

  // `module` (as the options name it) is used as a value at `place`. True
  // the first time a module that value flow can matter for is noted.
  bool note_module(const std::string& module, const Place& place);
  // A module computed at run time is used as a value at `place`.
  void note_computed(const Place& place);
  // An atom that names a function (:cmd) is written at `place`.
  void note_name(const std::string& name, const Place& place);

  // What `call`, placed as `at` (a low warning or a placeholder), becomes:
  // a value_flow finding, an unresolved_indirection warning when the value
  // is beyond `depth`, or nullopt when nothing in the file gives it a module.
  [[nodiscard]] std::optional<Finding> judge(const Call& call, const Finding& at, int depth);

private:
  struct Pairing;
  void pair_written_together();

  const RuleSet& m_rules;
  std::map<std::string, Place> m_modules;                     // first use of each module as a value
  std::optional<Place> m_computed;                            // first module computed at run time
  std::vector<std::pair<std::string, Place>> m_grouped_values; // modules used as values inside a group
  std::vector<std::pair<std::string, Place>> m_grouped_names;  // atoms naming their functions, likewise
  bool m_paired = false;
  // (module, function) -> the first value and name written together
  std::map<std::pair<std::string, std::string>, std::pair<const Place*, const Place*>> m_together;
};

} // namespace sandbox::scan
