#pragma once
// What an Elixir source file defines and references, read from its
// tree-sitter syntax tree: the modules it defines, the modules it references
// (classified as Mix's tracers would: compile, export, runtime), the files it
// reads at compile time, and a digest per function (def, defp, defmacro, ...)
// with comments, whitespace and positions left out.
//
// This is the fallback when the backend recorded no references; it errs on
// the side of more dependencies (a missed compile-time dependency would leave
// a stale BEAM).

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::incremental {

struct SourceFacts {
  std::vector<std::string> modules;     // defined here, e.g. "MyApp.Foo"
  std::set<std::string> compile_refs;   // module body, use/require, @behaviour, macros
  std::set<std::string> export_refs;    // structs
  std::set<std::string> runtime_refs;   // calls from function bodies, typespecs
  std::set<std::string> imports;        // import X: compile when X defines macros, else export
  std::set<std::string> reads;          // string literals given to File/:file calls, @external_resource
  bool reads_unknown = false;           // a compile-time read whose path is not a literal
  bool dynamic_compile = false;         // apply/var.fun() in the module body: depends on anything
  std::map<std::string, std::string> functions; // "def name/arity" -> digest (all clauses)
  std::map<std::string, std::string> structs;   // module -> digest of its defstruct/defexception
  std::string ast_digest;               // the whole file, comments and positions left out
  bool parse_error = false;
};

SourceFacts analyze_elixir(std::string_view source);

} // namespace sandbox::incremental
