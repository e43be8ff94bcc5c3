// The confinement allowlist (scan/confinement.h): the one table of what code
// run by a compile may call and which standard-library modules a submission
// may use, require, derive or implement. A function is allowed when it has no
// effect that outlives the compile: it computes on its arguments, reads the
// clock, or raises. Anything that starts or messages a process, writes to a
// table, the process dictionary, the application environment, the code
// server, a file, a port, the logger or a tracer, or creates atoms from data
// (the atom table is never collected) is not.

#include "scan/confinement.h"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <utility>

namespace sandbox::scan {

namespace {

using Key = std::pair<std::string_view, std::string_view>;

struct Table {
  std::vector<ConfinementRule> rows;
  std::map<std::pair<Permit, Key>, std::size_t> index;
  std::set<std::string, std::less<>> modules;
};

Table build()
{
  Table t;
  auto add = [&](Permit permit, std::string_view module, std::initializer_list<std::string_view> functions,
                 bool allowed, std::string_view why) {
    for (auto function : functions) t.rows.push_back({permit, module, function, allowed, why});
  };
  auto pure = [&](std::string_view module, std::initializer_list<std::string_view> functions = {"*"}) {
    add(Permit::call, module, functions, true, "computes on its arguments");
  };
  auto deny = [&](std::string_view module, std::initializer_list<std::string_view> functions,
                  std::string_view why) { add(Permit::call, module, functions, false, why); };

  constexpr std::string_view kAtoms = "creates atoms from data; the atom table is never collected";
  constexpr std::string_view kProcess = "starts, links, messages or changes a process";
  constexpr std::string_view kRandom = "seeds the random generator in the process dictionary";

  // Operators are written as operators, not calls; "*" is left out of the
  // lists below because it is the every-function wildcard.
  // Kernel: the definitions, control flow, guards, term functions and
  // operators. raise, throw and exit only end the compile. apply/3 is judged
  // as a call of the module and function it names (a computed one is not
  // confined); apply/2 calls a fun whose code is judged where it is written.
  pure("Kernel",
       {"def", "defp", "defmacro", "defmacrop", "defguard", "defguardp", "defdelegate", "defmodule",
        "defprotocol", "defimpl", "defstruct", "defexception", "defoverridable", "if", "unless", "case",
        "cond", "with", "for", "try", "quote", "unquote", "unquote_splicing", "super", "raise", "reraise",
        "throw", "exit", "is_atom", "is_binary", "is_bitstring", "is_boolean", "is_float", "is_function",
        "is_integer", "is_list", "is_map", "is_map_key", "is_nil", "is_number", "is_pid", "is_port",
        "is_reference", "is_tuple", "is_struct", "is_exception", "is_non_struct_map", "elem", "put_elem", "hd",
        "tl", "length", "map_size", "tuple_size", "byte_size", "bit_size", "abs", "div", "rem", "round",
        "trunc", "ceil", "floor", "max", "min", "not", "to_string", "to_charlist", "inspect", "struct",
        "struct!", "get_in", "put_in", "update_in", "pop_in", "get_and_update_in", "then", "tap", "match?",
        "destructure", "var!", "alias!", "binary_part", "binary_slice", "self", "node", "make_ref", "binding",
        "function_exported?", "macro_exported?", "apply", "sigil_s", "sigil_S", "sigil_c", "sigil_C",
        "sigil_w", "sigil_W", "sigil_r", "sigil_R", "sigil_D", "sigil_T", "sigil_N", "sigil_U", "and", "or",
        "in", "__block__", "__aliases__", "__MODULE__", "__DIR__", "__ENV__", "__CALLER__",
        "__STACKTRACE__", "+", "-", "/", "==", "!=", "===", "!==", "<", ">", "<=", ">=", "++", "--", "<>",
        "=~", "..", "|>", "!", "&&", "||"});
  deny("Kernel", {"spawn", "spawn_link", "spawn_monitor", "send"}, kProcess);
  deny("Kernel", {"receive"}, "takes messages from the compiling process's mailbox");
  deny("Kernel", {"dbg"}, "calls a configurable callback");
  deny("Kernel.SpecialForms", {"receive"}, "takes messages from the compiling process's mailbox");
  pure("Kernel.SpecialForms");

  // Data structures and text.
  pure("Enum");
  deny("Enum", {"random", "shuffle", "take_random"}, kRandom);
  pure("Stream");
  pure("Map");
  pure("MapSet");
  pure("Keyword");
  pure("List");
  deny("List", {"to_atom"}, kAtoms);
  pure("String");
  deny("String", {"to_atom"}, kAtoms);
  pure("Tuple");
  pure("Integer");
  pure("Float");
  pure("Atom");
  pure("Bitwise");
  pure("Range");
  pure("Regex");
  pure("Access");
  pure("Base");
  pure("OptionParser");
  deny("OptionParser", {"parse", "parse!", "parse_head", "parse_head!"},
       "creates atoms from switch names unless told not to");
  pure("Version");
  pure("URI");
  deny("URI", {"default_port"}, "default_port/2 writes the application environment");
  pure("Path");
  deny("Path", {"wildcard"}, "reads the file system");
  pure("Date");
  pure("Time");
  pure("NaiveDateTime");
  pure("DateTime");
  pure("Calendar");
  pure("Calendar.ISO");
  pure("Exception");
  pure("Function", {"identity", "info"});
  deny("Function", {"capture"}, "builds a fun of a computed module");
  pure("Macro");
  pure("Macro.Env");
  pure("Inspect.Algebra");
  pure("Inspect.Opts");
  // Protocols dispatch on data; the submission's implementations are judged
  // as compile-time code (scan/confinement.cpp).
  pure("Inspect");
  pure("String.Chars");
  pure("List.Chars");
  pure("Enumerable");
  pure("Collectable");
  pure("Record", {"defrecord", "defrecordp", "is_record"});
  deny("Record", {"extract", "extract_all"}, "reads Erlang header files");
  // IO: output only (the group leader takes it; nothing stays).
  add(Permit::call, "IO",
      {"puts", "write", "inspect", "warn", "iodata_to_binary", "iodata_length", "chardata_to_string"}, true,
      "writes to the compile's output");

  // System: constants of the running VM and the clock; the rest runs
  // programs, reads the host's environment or stops the VM.
  add(Permit::call, "System",
      {"version", "otp_release", "build_info", "endianness", "compiled_endianness", "monotonic_time",
       "system_time", "os_time", "unique_integer", "convert_time_unit"},
      true, "a constant of the VM or the clock");

  // Module: the attribute and definition functions of the module being
  // compiled. Module.concat builds atoms; create and eval_quoted compile code
  // the table cannot see.
  add(Permit::call, "Module",
      {"register_attribute", "put_attribute", "get_attribute", "delete_attribute", "has_attribute?",
       "definitions_in", "defines?", "defines_type?", "open?", "overridable?", "split", "safe_concat",
       "get_definition", "attributes_in"},
      true, "reads or writes the attributes and definitions of a module being compiled");
  deny("Module", {"create", "eval_quoted"}, "compiles code the analysis cannot see");
  deny("Module", {"concat"}, kAtoms);
  deny("Module", {"*"}, "not one of the attribute functions");

  // Application: reading the environment; writing it outlives the compile.
  add(Permit::call, "Application",
      {"compile_env", "compile_env!", "get_env", "fetch_env", "fetch_env!", "get_all_env"}, true,
      "reads the application environment");
  deny("Application", {"*"}, "writes the application environment or starts applications");

  // Erlang.
  add(Permit::call, ":erlang",
      {"abs", "adler32", "append_element", "atom_to_binary", "atom_to_list", "band", "bor", "bxor", "bnot",
       "bsl", "bsr", "binary_part", "binary_to_existing_atom", "binary_to_float", "binary_to_integer",
       "binary_to_list", "bit_size", "bitstring_to_list", "byte_size", "ceil", "crc32", "date",
       "delete_element", "div", "element", "error", "float", "float_to_binary", "float_to_list", "floor",
       "hd", "insert_element", "integer_to_binary", "integer_to_list", "iolist_size", "iolist_to_binary",
       "is_atom", "is_binary", "is_bitstring", "is_boolean", "is_float", "is_function", "is_integer",
       "is_list", "is_map", "is_map_key", "is_number", "is_pid", "is_port", "is_reference", "is_tuple",
       "length", "list_to_binary", "list_to_bitstring", "list_to_existing_atom", "list_to_float",
       "list_to_integer", "list_to_tuple", "localtime", "make_ref", "make_tuple", "map_get", "map_size",
       "max", "md5", "min", "monotonic_time", "node", "phash2", "raise", "rem", "round", "self",
       "setelement", "size", "split_binary", "system_time", "term_to_binary", "throw", "time", "timestamp",
       "tl", "trunc", "tuple_size", "tuple_to_list", "unique_integer", "universaltime", "+", "-", "/",
       "==", "/=", "=<", "<", ">=", ">", "=:=", "=/=", "and", "or", "not", "xor", "++", "--"},
      true, "a pure built-in function");
  deny(":erlang", {"binary_to_atom", "list_to_atom", "binary_to_term"}, kAtoms);
  deny(":erlang", {"spawn", "spawn_link", "spawn_monitor", "spawn_opt", "send", "register", "link",
                   "monitor", "exit", "process_flag", "group_leader"},
       kProcess);
  deny(":erlang", {"put", "erase"}, "writes the process dictionary");
  deny(":erlang", {"trace", "trace_pattern", "system_flag", "halt", "load_nif", "load_module",
                   "purge_module", "delete_module", "open_port", "apply"},
       "changes the VM, its code or its tracing, or calls a computed function");
  for (auto module : {":lists", ":maps", ":proplists", ":string", ":binary", ":unicode", ":math", ":sets",
                      ":ordsets", ":gb_trees", ":gb_sets", ":orddict", ":dict", ":queue", ":array", ":io_lib",
                      ":filename", ":uri_string", ":base64", ":calendar"}) {
    pure(module);
  }
  pure(":crypto", {"hash"});

  // Explicitly not allowed, for the reader (no row means the same).
  for (auto module : {"System", "File", "Port", "Process", "Node", "Code", "Logger", "Agent", "Task",
                      "GenServer", "Supervisor", "DynamicSupervisor", "Registry", "StringIO", "Protocol",
                      ":ets", ":dets", ":persistent_term", ":code", ":dbg", ":seq_trace", ":logger", ":os",
                      ":application", ":global", ":rpc", ":erpc", ":net_kernel", ":init", ":file", ":timer",
                      ":rand", ":counters", ":atomics", ":prim_file", ":erl_ddll"}) {
    deny(module, {"*"}, "outside the allowlist: processes, tables, files, the host, code or the VM");
  }

  // use: the standard library's __using__ macros that only define functions
  // and attributes (child_spec, callbacks' defaults).
  for (auto module : {"GenServer", "Agent", "Supervisor", "DynamicSupervisor", "Application", "Task", "Bitwise"}) {
    add(Permit::use, module, {"*"}, true, "its __using__ defines functions and attributes only");
  }
  // require/import: besides every module with an allowed call row.
  for (auto module : {"Logger", "Record", "Kernel", "Kernel.SpecialForms", "Bitwise", "Integer"}) {
    add(Permit::require, module, {"*"}, true, "standard-library macros expanded by standard-library code");
  }
  add(Permit::derive, "Inspect", {"*"}, true, "Inspect.Any.__deriving__ is standard-library code");
  for (auto module : {"Enumerable", "Collectable", "Inspect", "String.Chars", "List.Chars", "JSON.Encoder"}) {
    add(Permit::implement, module, {"*"}, true, "a standard-library protocol");
  }

  // Erlang headers: records and macros; ms_transform.hrl asks for the
  // standard library's own parse transform, which rewrites match specs.
  for (auto header : {"kernel/include/file.hrl", "kernel/include/logger.hrl", "kernel/include/inet.hrl",
                      "stdlib/include/ms_transform.hrl", "stdlib/include/assert.hrl", "stdlib/include/qlc.hrl"}) {
    add(Permit::include, header, {"*"}, true, "a standard-library header");
  }

  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const auto& row = t.rows[i];
    t.index.emplace(std::pair{row.permit, Key{row.module, row.function}}, i); // first row wins
    if (row.permit != Permit::include) t.modules.emplace(row.module);
  }
  return t;
}

const Table& table()
{
  static const Table t = build();
  return t;
}

} // namespace

const std::vector<ConfinementRule>& confinement_table() { return table().rows; }

const ConfinementRule* find_confinement_rule(Permit permit, std::string_view module, std::string_view function)
{
  const auto& t = table();
  auto it = t.index.find({permit, Key{module, function}});
  if (it == t.index.end()) it = t.index.find({permit, Key{module, "*"}});
  return it == t.index.end() ? nullptr : &t.rows[it->second];
}

bool confinement_allows(Permit permit, std::string_view module, std::string_view function)
{
  const auto* row = find_confinement_rule(permit, module, function);
  if (permit == Permit::require && (row == nullptr || !row->allowed)) {
    // require/import of a module whose calls the table allows somewhere.
    const auto& rows = table().rows;
    return std::any_of(rows.begin(), rows.end(), [&](const ConfinementRule& r) {
      return r.permit == Permit::call && r.module == module && r.allowed;
    });
  }
  return row != nullptr && row->allowed;
}

bool confinement_knows_module(std::string_view module) { return table().modules.contains(module); }

std::string normalize_module_name(std::string_view name)
{
  if (name.starts_with("Elixir.")) return std::string(name.substr(7));
  if (name.starts_with(':')) return std::string(name);
  if (!name.empty() && name.front() >= 'A' && name.front() <= 'Z') return std::string(name);
  return ":" + std::string(name);
}

} // namespace sandbox::scan
