#include "scan/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

namespace sandbox::scan {

namespace {

using S = Severity;

constexpr bool kPath = true;

Rule threat(std::string_view module, std::string_view function, std::string_view operation,
            Severity severity, std::string_view message, bool path = false)
{
  return Rule{module, function, operation, severity, false, path, false, message};
}

Rule always(std::string_view module, std::string_view function, std::string_view operation,
            Severity severity, std::string_view message)
{
  return Rule{module, function, operation, severity, false, false, true, message};
}

Rule safe(std::string_view module, std::string_view function, bool is_always = false)
{
  return Rule{module, function, "", S::low, true, false, is_always, ""};
}

std::vector<Rule> build_table()
{
  std::vector<Rule> t;
  auto add_safe = [&](std::string_view module, std::initializer_list<std::string_view> functions) {
    for (auto f : functions) t.push_back(safe(module, f));
  };
  auto add = [&](std::string_view module, std::initializer_list<std::string_view> functions,
                 std::string_view operation, Severity severity, std::string_view message,
                 bool path = false) {
    for (auto f : functions) t.push_back(threat(module, f, operation, severity, message, path));
  };
  auto add_always = [&](std::string_view module, std::initializer_list<std::string_view> functions,
                        std::string_view operation, Severity severity, std::string_view message) {
    for (auto f : functions) t.push_back(always(module, f, operation, severity, message));
  };

  // System
  add("System", {"cmd", "shell"}, "system_command", S::critical, "System command execution");
  add("System", {"halt", "stop", "restart"}, "system_halt", S::high, "System halt");
  add("System", {"trap_signal", "untrap_signal"}, "process_introspection", S::medium,
      "OS signal handler installed");
  add("System", {"get_env", "fetch_env", "fetch_env!", "put_env", "delete_env", "argv", "cwd",
                 "cwd!", "user_home", "user_home!", "tmp_dir", "tmp_dir!", "find_executable",
                 "pid", "at_exit", "get_pid"},
      "process_introspection", S::low, "Host environment read");
  add_safe("System", {"version", "build_info", "otp_release", "compiled_endianness", "endianness",
                      "monotonic_time", "system_time", "os_time", "unique_integer", "time_offset",
                      "convert_time_unit", "schedulers", "schedulers_online", "stacktrace",
                      "no_halt"});
  add("System", {"*"}, "process_introspection", S::low, "System function");

  // :os
  add(":os", {"cmd"}, "system_command", S::critical, "OS command execution");
  add(":os", {"set_signal"}, "process_introspection", S::medium, "OS signal handler installed");
  add(":os", {"getenv", "putenv", "unsetenv", "env", "find_executable", "getpid"},
      "process_introspection", S::low, "Host environment read");
  add_safe(":os", {"type", "version", "timestamp", "system_time", "perf_counter",
                   "perf_counter_size", "time_offset"});
  add(":os", {"*"}, "process_introspection", S::low, ":os function");

  // Port and ports through :erlang
  add("Port", {"open"}, "port_access", S::critical, "Port opened (external program)");
  add("Port", {"info", "list", "monitor", "demonitor"}, "port_access", S::low, "Port introspection");
  add("Port", {"*"}, "port_access", S::high, "Port operation");

  // :erlang: restricted function by function; its pure BIFs are the rest.
  add(":erlang", {"open_port"}, "port_access", S::critical, "Port opened (external program)");
  add(":erlang", {"load_nif"}, "nif_loading", S::critical, "NIF library loaded");
  add(":erlang", {"load_module", "purge_module", "delete_module", "finish_loading",
                  "prepare_loading"},
      "code_loading", S::high, "Code loaded into the VM");
  add(":erlang", {"halt"}, "system_halt", S::high, "VM halt");
  add(":erlang", {"set_cookie", "disconnect_node", "monitor_node", "spawn_request"},
      "distribution", S::high, "Distribution");
  add(":erlang", {"system_flag"}, "process_introspection", S::medium, "VM setting changed");
  add(":erlang", {"port_command", "port_control", "port_call", "port_connect",
                  "port_close"},
      "port_access", S::high, "Port or VM control");
  add(":erlang", {"spawn", "spawn_link", "spawn_monitor", "spawn_opt"}, "process_spawn", S::low,
      "Process spawned");
  add(":erlang", {"processes", "process_info", "ports", "port_info", "get_cookie", "nodes"},
      "process_introspection", S::low, "VM introspection");
  t.push_back(safe(":erlang", "*"));

  // :code
  add(":code", {"load_binary", "load_file", "load_abs", "atomic_load", "finish_loading",
                "prepare_loading", "purge", "soft_purge", "delete", "add_path", "add_patha",
                "add_pathz", "add_paths", "add_pathsa", "add_pathsz", "set_path", "replace_path",
                "del_path", "del_paths", "stick_dir", "unstick_dir", "stick_mod", "unstick_mod"},
      "code_loading", S::high, "Code loading or code path change");
  add_safe(":code", {"ensure_loaded", "is_loaded", "which", "priv_dir", "lib_dir", "root_dir",
                     "all_loaded", "module_status", "is_sticky", "get_path", "objfile_extension",
                     "ensure_modules_loaded", "get_mode", "is_module_native", "modified_modules",
                     "module_md5"});
  add(":code", {"*"}, "code_loading", S::low, ":code function");

  // Code
  add("Code", {"eval_string", "eval_quoted", "eval_file", "eval_quoted_with_env"},
      "code_evaluation", S::critical, "Code evaluation");
  add("Code", {"compile_string", "compile_quoted", "compile_file", "require_file", "load_file",
               "unrequire_files"},
      "code_evaluation", S::critical, "Code compiled and loaded at run time");
  add("Code", {"append_path", "prepend_path", "delete_path", "append_paths", "prepend_paths",
               "delete_paths", "purge_compiler_modules"},
      "code_loading", S::high, "Code path change");
  add_safe("Code", {"ensure_loaded", "ensure_loaded?", "ensure_loaded!", "ensure_compiled",
                    "ensure_compiled!", "ensure_all_loaded", "loaded?", "fetch_docs",
                    "format_string!", "format_file!", "string_to_quoted", "string_to_quoted!",
                    "string_to_quoted_with_comments", "string_to_quoted_with_comments!",
                    "quoted_to_algebra", "compiler_options", "get_compiler_option",
                    "available_compiler_options", "can_await_module_compilation?",
                    "required_files", "env_for_eval", "cursor_context", "fragment",
                    "print_diagnostic", "with_diagnostics", "put_compiler_option"});
  add("Code", {"*"}, "code_evaluation", S::low, "Code function");

  // :file
  add(":file", {"eval", "path_eval", "script", "path_script"}, "code_evaluation", S::critical,
      "Erlang terms evaluated from a file", kPath);
  add(":file", {"delete", "del_dir", "del_dir_r"}, "file_delete", S::high, "File deletion", kPath);
  add(":file", {"write_file", "write", "copy", "rename", "make_dir", "make_link", "make_symlink",
                "change_mode", "change_owner", "change_group", "change_time", "write_file_info",
                "set_cwd", "truncate", "sendfile"},
      "file_write", S::medium, "File write", kPath);
  add(":file", {"read_file", "read_file_info", "read_link_info", "read_link", "read_link_all",
                "consult", "path_consult", "open", "list_dir", "list_dir_all", "read",
                "read_line", "pread", "get_cwd"},
      "file_read", S::low, "File read", kPath);
  add_safe(":file", {"native_name_encoding", "format_error", "close", "position"});
  add(":file", {"*"}, "file_read", S::low, ":file function", kPath);

  // File
  add("File", {"rm", "rm!", "rm_rf", "rm_rf!", "rmdir", "rmdir!"}, "file_delete", S::high,
      "File deletion", kPath);
  add("File", {"write", "write!", "touch", "touch!", "cp", "cp!", "cp_r", "cp_r!", "copy",
               "copy!", "rename", "rename!", "mkdir", "mkdir!", "mkdir_p", "mkdir_p!", "ln",
               "ln!", "ln_s", "ln_s!", "chmod", "chmod!", "chown", "chown!", "chgrp", "chgrp!",
               "write_stat", "write_stat!", "cd", "cd!"},
      "file_write", S::medium, "File write", kPath);
  add("File", {"*"}, "file_read", S::low, "File read", kPath);

  // Networking (checked whatever restricted_modules says).
  for (auto module : {":gen_tcp", ":gen_udp", ":gen_sctp", ":ssl", ":httpc", ":socket", ":ftp",
                      ":tftp", ":ssh", ":httpd", ":inets", ":ssh_sftp"}) {
    add_always(module, {"*"}, "network_access", S::medium, "Network access");
  }
  add_always(":inet", {"gethostbyname", "gethostbyaddr", "getaddr", "getaddrs", "gethostname",
                       "getifaddrs"},
             "network_access", S::medium, "Network lookup");
  t.push_back(safe(":inet", "*", true));

  // Distribution
  t.push_back(safe("Node", "self", true));
  t.push_back(safe("Node", "alive?", true));
  add_always("Node", {"list", "get_cookie"}, "distribution", S::low, "Distribution introspection");
  add_always("Node", {"*"}, "distribution", S::high, "Distribution");
  for (auto module : {":net_kernel", ":rpc", ":erpc", ":net_adm", ":slave", ":peer",
                      ":global_group", ":auth"}) {
    add_always(module, {"*"}, "distribution", S::high, "Distribution");
  }

  // NIF and driver loading, evaluation and halting outside the listed modules.
  add_always(":erl_ddll", {"*"}, "nif_loading", S::critical, "Driver loaded");
  add_always(":erl_eval", {"*"}, "code_evaluation", S::critical, "Erlang code evaluation");
  add_always(":init", {"stop", "restart", "reboot"}, "system_halt", S::high, "VM halt");
  t.push_back(safe(":init", "*", true));
  add_always(":prim_file", {"*"}, "file_write", S::medium, "Raw file access");
  add_always(":erl_prim_loader", {"*"}, "file_read", S::low, "Raw file read");

  // Processes (the specification's medium risk; low here, as every real
  // library starts processes and the jail bounds them).
  add_always("Task", {"start", "start_link", "async", "async_stream"}, "process_spawn", S::low,
             "Process spawned");
  t.push_back(safe("Task", "*", true));
  add_always("Kernel", {"spawn", "spawn_link", "spawn_monitor"}, "process_spawn", S::low,
             "Process spawned");
  t.push_back(safe("Kernel", "*", true));
  return t;
}

// Functions that take M, F, A and call them (rules.h, MfaCall).
std::vector<MfaCall> build_mfa_calls()
{
  std::vector<MfaCall> t;
  auto add = [&](std::string_view module, std::initializer_list<std::string_view> functions,
                 std::initializer_list<std::uint32_t> arities, std::uint32_t module_argument, std::string_view where,
                 std::uint32_t prepended = 0) {
    for (auto function : functions) {
      for (auto arity : arities) t.push_back({module, function, arity, module_argument, prepended, where});
    }
  };
  constexpr std::string_view kProcess = "in a new process";
  constexpr std::string_view kNodeProcess = "in a new process on a node";
  // Kernel.spawn/3 and kin compile to :erlang's; Process.spawn/4 to spawn_opt/4.
  add("Kernel", {"spawn", "spawn_link", "spawn_monitor"}, {3}, 0, kProcess);
  add("Process", {"spawn"}, {4}, 0, kProcess);
  add(":erlang", {"spawn", "spawn_link", "spawn_monitor"}, {3}, 0, kProcess);
  add(":erlang", {"spawn", "spawn_link", "spawn_monitor"}, {4}, 1, kNodeProcess);
  add(":erlang", {"spawn_opt"}, {4}, 0, kProcess);
  add(":erlang", {"spawn_opt"}, {5}, 1, kNodeProcess);
  add(":erlang", {"hibernate"}, {3}, 0, "when the process wakes up");
  // spawn_request/3 is (M, F, A) or (Node, Fun, Opts), /4 (Node, M, F, A) or (M, F, A, Opts).
  add(":erlang", {"spawn_request"}, {5}, 1, "on a node");
  add(":proc_lib", {"spawn", "spawn_link"}, {3}, 0, kProcess);
  add(":proc_lib", {"spawn", "spawn_link"}, {4}, 1, kNodeProcess);
  add(":proc_lib", {"spawn_opt"}, {4}, 0, kProcess);
  add(":proc_lib", {"spawn_opt"}, {5}, 1, kNodeProcess);
  add(":proc_lib", {"start", "start_link", "start_monitor"}, {3, 4, 5}, 0, kProcess);
  add("Node", {"spawn"}, {4, 5}, 1, kNodeProcess);
  add("Node", {"spawn_link", "spawn_monitor"}, {4}, 1, kNodeProcess);
  add("Task", {"start", "start_link", "async"}, {3}, 0, "in a task");
  add("Task", {"async_stream"}, {4, 5}, 1, "in tasks", 1);
  add("Task.Supervisor", {"start_child", "async", "async_nolink"}, {4, 5}, 1, "in a supervised task");
  add("Task.Supervisor", {"async_stream", "async_stream_nolink"}, {5, 6}, 2, "in supervised tasks", 1);
  add("Agent", {"start", "start_link"}, {3, 4}, 0, "in an agent process");
  add("Agent", {"get", "update", "get_and_update"}, {4, 5}, 1, "in the agent process", 1);
  add("Agent", {"cast"}, {4}, 1, "in the agent process", 1);
  add(":timer", {"apply_after", "apply_interval", "apply_repeatedly"}, {4}, 1, "from a timer");
  add(":rpc", {"call", "block_call"}, {4, 5}, 1, "on a node");
  add(":rpc", {"cast", "async_call"}, {4}, 1, "on a node");
  add(":rpc", {"multicall"}, {3}, 0, "on every node");
  add(":rpc", {"multicall"}, {5}, 1, "on the nodes");
  add(":erpc", {"call"}, {4, 5}, 1, "on a node");
  add(":erpc", {"cast", "send_request"}, {4}, 1, "on a node");
  add(":erpc", {"multicall"}, {4, 5}, 1, "on the nodes");
  add(":erpc", {"multicast"}, {4}, 1, "on the nodes");
  return t;
}

bool contains(const std::vector<std::string>& list, std::string_view item)
{
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The rows of each module, so a lookup reads a handful of rows, not the table.
const std::unordered_map<std::string_view, std::vector<const Rule*>>& rules_by_module()
{
  static const auto index = [] {
    std::unordered_map<std::string_view, std::vector<const Rule*>> out;
    for (const auto& rule : rule_table()) out[rule.module].push_back(&rule);
    return out;
  }();
  return index;
}

const Rule* find_rule(std::string_view module, std::string_view function)
{
  const auto& index = rules_by_module();
  auto rows = index.find(module);
  if (rows == index.end()) return nullptr;
  const Rule* fallback = nullptr;
  for (const Rule* row : rows->second) {
    const Rule& rule = *row;
    if (rule.function == function) return &rule;
    if (rule.function == "*") fallback = &rule;
  }
  return fallback;
}

} // namespace

const std::vector<MfaCall>& mfa_call_table()
{
  static const std::vector<MfaCall> table = build_mfa_calls();
  return table;
}

const MfaCall* find_mfa_call(std::string_view module, std::string_view function, std::uint32_t arity)
{
  for (const auto& row : mfa_call_table()) {
    if (row.arity == arity && row.function == function && row.module == module) return &row;
  }
  return nullptr;
}

std::vector<std::string_view> mfa_call_functions(std::string_view module)
{
  std::vector<std::string_view> out;
  for (const auto& row : mfa_call_table()) {
    if (row.module == module && std::find(out.begin(), out.end(), row.function) == out.end()) {
      out.push_back(row.function);
    }
  }
  return out;
}

bool takes_mfa(std::string_view module, std::string_view function)
{
  return std::any_of(mfa_call_table().begin(), mfa_call_table().end(), [&](const MfaCall& row) {
    return row.module == module && row.function == function;
  });
}

std::string_view to_string(Severity severity)
{
  switch (severity) {
  case Severity::low: return "low";
  case Severity::medium: return "medium";
  case Severity::high: return "high";
  case Severity::critical: return "critical";
  }
  return "low";
}

const std::vector<Rule>& rule_table()
{
  static const std::vector<Rule> table = build_table();
  return table;
}

RuleSet::RuleSet(std::vector<std::string> restricted_modules,
                 std::vector<std::string> allowed_operations)
    : m_restricted(std::move(restricted_modules)), m_allowed(std::move(allowed_operations))
{
  for (auto& op : m_allowed) {
    if (op.starts_with(':')) op.erase(0, 1);
  }
  std::vector<std::string> matter(m_restricted.begin(), m_restricted.end());
  // Mix.Tasks: a call of a Mix task from host code is reported (Mix tasks
  // are judged only as code Mix runs).
  for (const char* module : {"Module", "String", "List", "Kernel", "Function", ":erlang", "Mix.Tasks"}) {
    matter.emplace_back(module);
  }
  // Functions that take M, F, A call what they are given (spawn/3, :timer.apply_after/4).
  for (const auto& row : mfa_call_table()) matter.emplace_back(row.module);
  for (const auto& rule : rule_table()) {
    if (rule.safe || !(rule.always || restricted(rule.module))) continue;
    matter.emplace_back(rule.module);
    if (rule.function == "*") continue;
    if (rule.severity >= Severity::high) m_dangerous.emplace(rule.function);
    if (rule.severity > Severity::low) {
      m_value_flow[std::string(rule.module)].emplace_back(rule.function);
      m_value_flow_names.emplace(rule.function);
    }
    if (rule.module == "Kernel" || rule.severity >= Severity::high) m_identifiers.emplace(rule.function);
  }
  for (const char* word : {"apply", "on_load"}) m_identifiers.emplace(word);
  for (const auto& module : matter) {
    std::string_view name = module;
    if (name.starts_with(':')) {
      m_module_words.emplace(name.substr(1));
      m_module_prefixes.emplace(name);
      continue;
    }
    m_module_words.emplace(name.substr(0, name.find('.')));
    for (auto dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
      m_module_prefixes.emplace(name.substr(0, dot));
    }
    m_module_prefixes.emplace(name);
  }
  for (const auto* words : {&m_identifiers, &m_module_words}) {
    for (const auto& word : *words) {
      if (!word.empty() && word.size() < 64) m_shapes[static_cast<unsigned char>(word.front())] |= 1ull << word.size();
    }
  }
}

bool builds_module_name(std::string_view module, std::string_view function)
{
  if (module == "Module") return function == "concat" || function == "safe_concat";
  if (module == "String" || module == "List") return function == "to_atom" || function == "to_existing_atom";
  if (module == ":erlang") {
    return function == "binary_to_atom" || function == "list_to_atom" ||
           function == "binary_to_existing_atom" || function == "list_to_existing_atom";
  }
  return false;
}

bool RuleSet::module_matters(std::string_view module) const
{
  return m_module_prefixes.contains(module) || module.starts_with("Mix.Tasks.");
}

bool RuleSet::call_matters(std::string_view module, std::string_view function) const
{
  if (lookup(module, function) || builds_module_name(module, function) || takes_mfa(module, function)) return true;
  if (function == "apply") return module == "Kernel" || module == ":erlang";
  return (module == "Function" && function == "capture") || (module == ":erlang" && function == "make_fun");
}

bool RuleSet::identifier_matters(std::string_view word) const
{
  return m_identifiers.contains(word);
}

std::vector<std::string_view> RuleSet::functions_with_rows(std::string_view module) const
{
  std::vector<std::string_view> out;
  const auto& index = rules_by_module();
  if (auto rows = index.find(module); rows != index.end()) {
    for (const Rule* rule : rows->second) {
      if (rule->function != "*") out.push_back(rule->function);
    }
  }
  return out;
}

bool RuleSet::module_word(std::string_view word) const
{
  return m_module_words.contains(word);
}

bool RuleSet::restricted(std::string_view module) const { return contains(m_restricted, module); }

bool RuleSet::allowed(std::string_view operation) const { return contains(m_allowed, operation); }

std::optional<Rule> RuleSet::lookup(std::string_view module, std::string_view function) const
{
  const Rule* rule = find_rule(module, function);
  if (rule) {
    if (rule->safe || (!rule->always && !restricted(module))) return std::nullopt;
    return *rule;
  }
  if (restricted(module)) {
    return Rule{module, "*", "restricted_module", Severity::high, false, false, false,
                "Call of a restricted module"};
  }
  return std::nullopt;
}

bool RuleSet::has_row(std::string_view module, std::string_view function) const
{
  const Rule* rule = find_rule(module, function);
  return rule != nullptr && rule->function == function;
}

bool RuleSet::has_dangerous_functions(std::string_view module) const
{
  if (!restricted(module)) {
    for (const auto& rule : rule_table()) {
      if (rule.module == module && rule.always && !rule.safe && rule.severity > Severity::low) {
        return true;
      }
    }
    return false;
  }
  bool any_row = false;
  for (const auto& rule : rule_table()) {
    if (rule.module != module) continue;
    any_row = true;
    if (!rule.safe && rule.severity > Severity::low) return true;
  }
  return !any_row;
}

bool RuleSet::is_dangerous_function_name(std::string_view function) const
{
  return m_dangerous.contains(function);
}

const std::vector<std::string>& RuleSet::value_flow_functions(std::string_view module) const
{
  static const std::vector<std::string> none;
  auto found = m_value_flow.find(module);
  return found == m_value_flow.end() ? none : found->second;
}

bool RuleSet::is_value_flow_function(std::string_view function) const
{
  return m_value_flow_names.contains(function);
}

std::optional<Rule> RuleSet::strongest_rule_named(std::string_view function) const
{
  if (!is_dangerous_function_name(function)) return std::nullopt;
  std::optional<Rule> best;
  for (const auto& rule : rule_table()) {
    if (rule.function != function || rule.safe || !(rule.always || restricted(rule.module))) continue;
    if (!best || rule.severity > best->severity) best = rule;
  }
  return best;
}

bool RuleSet::may_be_vocabulary(std::string_view word) const
{
  auto first = static_cast<unsigned char>(word.front());
  return word.size() < 64 && (m_shapes[first] >> word.size() & 1u) != 0;
}

std::string module_from_atom(std::string_view atom)
{
  if (atom.starts_with("Elixir.")) return std::string(atom.substr(7));
  return ":" + std::string(atom);
}

std::string display_call(std::string_view module, std::string_view function,
                         std::optional<std::uint32_t> arity)
{
  std::string out = fmt::format("{}.{}", module, function);
  if (arity) out += fmt::format("/{}", *arity);
  return out;
}

} // namespace sandbox::scan
