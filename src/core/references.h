#pragma once
// What compiling one source file referenced, as Mix's compiler tracers record
// it (compile-time, export and runtime references), plus the files the compile
// read. Backends that can capture these (the warm worker) fill them in; the
// incremental planner consumes them and falls back to source analysis where
// they are absent.

#include <string>
#include <vector>

namespace sandbox::core {

// Module names are written as Elixir's inspect prints the atom: "MyApp.Foo"
// for Elixir modules (the "Elixir." prefix dropped), ":lists" for Erlang ones.
// A file's own modules are never listed among its references, and a module
// that is a compile reference is not repeated as a runtime one.
struct FileReferences {
  std::string file;                         // relative to the sandbox
  std::vector<std::string> modules;         // modules the file defines, e.g. "MyApp.Foo"
  std::vector<std::string> compile_refs;    // needed while compiling: macros, require, module body calls
  std::vector<std::string> export_refs;     // depends on their exports: structs, imports
  std::vector<std::string> runtime_refs;    // called from function bodies
  std::vector<std::string> external_resources; // files read while compiling, relative where inside the sandbox

  friend bool operator==(const FileReferences&, const FileReferences&) = default;
};

} // namespace sandbox::core
