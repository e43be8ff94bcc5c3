#include "scan/beam_audit.h"

#include "scan/erlang_scanner.h"
#include "util/fs.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

namespace sandbox::scan {

namespace {

// A BEAM the audit cannot read through is a threat: what it would run is unknown.
void report_unverifiable(Report& report, std::string_view file, std::string message)
{
  Finding finding;
  finding.type = "unverifiable_beam";
  finding.operation = "code_loading";
  finding.severity = Severity::high;
  finding.file = std::string(file);
  finding.runs_in = RunsIn::host;
  finding.message = std::move(message);
  finding.matched_text = std::string(file);
  report.add(std::move(finding));
}

// The atom of every Mix task module: `mix name` runs Elixir.Mix.Tasks.Name.
constexpr std::string_view kMixTaskAtom = "Elixir.Mix.Tasks.";

std::string erlang_mfa(const beam::Import& import)
{
  return fmt::format("{}:{}/{}", import.module, import.function, import.arity);
}

Finding mix_task_reference(std::string_view file, std::string_view task, std::string message)
{
  Finding finding;
  finding.type = "mix_task_reference";
  finding.operation = "mix_task";
  finding.severity = Severity::high;
  finding.file = std::string(file);
  finding.module = module_from_atom(task);
  finding.matched_text = std::string(task);
  finding.message = std::move(message);
  return finding;
}

// Host code that names a Mix task can call it, pass it as a callback module
// or start it; the atom and literal tables hold every module the code names
// (a call, a capture, a module passed as a value), whatever macro wrote it.
void audit_mix_task_references(const beam::BeamInfo& info, const beam::Literals& literals, std::string_view file,
                               Report& report)
{
  std::set<std::string> tasks;
  for (std::size_t i = 1; i < info.atoms.size(); ++i) {
    if (info.atoms[i].starts_with(kMixTaskAtom)) tasks.insert(info.atoms[i]);
  }
  // A task in a literal ([Mix.Tasks.Gen], &Mix.Tasks.Gen.run/1) is not in the atom table.
  for (const auto& atoms : literals.atoms) {
    for (const auto& atom : atoms) {
      if (atom.starts_with(kMixTaskAtom)) tasks.insert(atom);
    }
  }
  for (const auto& fun : literals.funs) {
    if (fun.target.module.starts_with(kMixTaskAtom)) tasks.insert(fun.target.module);
  }
  for (const auto& atom : tasks) {
    auto finding = mix_task_reference(
      file, atom,
      fmt::format("{} names the Mix task {}: code a host may load must not reach a task, whose code "
                  "is judged only as code Mix runs [HIGH RISK]",
                  info.module, module_from_atom(atom)));
    finding.surrounding_code = fmt::format("module {} names {}", info.module, atom);
    report.add(std::move(finding));
  }
}

// --- value flow -----------------------------------------------------------
//
// The bytecode counterpart of the source scan's value_flow rule. A module
// used as a value (an atom operand of an instruction, or an atom inside a
// literal) reaches a dynamic call (the apply instruction, or a call of
// erlang:apply/2,3, erlang:make_fun/3, Function.capture/3) that no import
// shows. The function of the call is the atom the code loaded into its
// register just before (m.cmd(...)); a function computed at run time pairs
// with a module and one of its functions written together (one literal
// such as {'Elixir.System', cmd}, one tuple or map built by one
// instruction, or the atom arguments of one call).

constexpr std::uint8_t kLabel = 1;
constexpr std::uint8_t kFuncInfo = 2;
constexpr std::uint8_t kCall = 4;
constexpr std::uint8_t kCallLast = 5;
constexpr std::uint8_t kCallOnly = 6;
constexpr std::uint8_t kCallExt = 7;
constexpr std::uint8_t kCallExtLast = 8;
constexpr std::uint8_t kMove = 64;
constexpr std::uint8_t kCallExtOnly = 78;
constexpr std::uint8_t kApply = 112;
constexpr std::uint8_t kApplyLast = 113;
constexpr std::uint8_t kPutMapAssoc = 154;
constexpr std::uint8_t kPutMapExact = 155;
constexpr std::uint8_t kPutTuple2 = 164;
constexpr std::uint8_t kUpdateRecord = 181;

struct DynamicCall {
  std::optional<std::string> function; // the atom loaded as its function, if any
  std::string how;                     // "the apply instruction", "erlang:apply/3"
};

// A call of a function that takes M, F, A (rules.h, MfaCall) whose module
// and function are the atoms the code loaded for it: spawn(System, :cmd, args).
struct MfaCallFact {
  std::string module;   // the atom, 'Elixir.System'
  std::string function; // cmd
  const beam::Import* through = nullptr;
  const MfaCall* row = nullptr;
};

struct ValueFacts {
  std::set<std::string> values;                  // atoms used as values
  std::vector<std::vector<std::string>> groups;  // atoms written together
  std::vector<DynamicCall> calls;
  std::vector<MfaCallFact> mfa_calls;
  bool decoded = true; // false: the code could not be decoded, facts are the atom table's
};

// The function register of a dynamic call through an import, or nullopt
// when the import is no dynamic call. erlang:apply/2 calls a fun.
std::optional<std::optional<std::uint64_t>> dynamic_import(const beam::Import& import)
{
  if (import.module == "erlang" && import.function == "apply" && import.arity == 3) return std::optional<std::uint64_t>(1);
  if (import.module == "erlang" && import.function == "apply" && import.arity == 2) return std::optional<std::uint64_t>();
  if (import.module == "erlang" && import.function == "make_fun" && import.arity == 3) return std::optional<std::uint64_t>(1);
  if (import.module == "Elixir.Function" && import.function == "capture" && import.arity == 3) {
    return std::optional<std::uint64_t>(1);
  }
  return std::nullopt;
}

// The row of an import that takes M, F, A, or nullptr.
const MfaCall* mfa_import(const beam::Import& import)
{
  return find_mfa_call(module_from_atom(import.module), import.function, import.arity);
}

// apply itself, or a function that takes M, F, A: given as the M and F of
// another, it calls what its argument list holds (whose length the
// registers do not tell).
bool calls_its_arguments(const std::string& module_atom, const std::string& function)
{
  auto module = module_from_atom(module_atom);
  if (function == "apply" && (module == ":erlang" || module == "Kernel")) return true;
  return takes_mfa(module, function);
}

ValueFacts value_facts(const beam::BeamInfo& info, std::string_view bytes, const beam::Literals& literals)
{
  ValueFacts facts;
  auto atom_name = [&](std::uint64_t index) -> const std::string* {
    return index >= 1 && index <= info.atoms.size() ? &info.atoms[index - 1] : nullptr;
  };
  // Atom operands, counted: the module a call that takes M, F, A is given is
  // judged there, not a value (as apply's module is in the sources).
  std::map<std::string, int> operands;
  facts.groups = literals.groups;
  // The atoms the code has just loaded into x registers, since the last
  // label or call: what a call's arguments and function are.
  std::map<std::uint64_t, std::string> loaded;
  auto call = [&](std::uint64_t registers) {
    std::vector<std::string> group;
    for (const auto& [reg, atom] : loaded) {
      if (reg < registers) group.push_back(atom);
    }
    if (group.size() > 1) facts.groups.push_back(std::move(group));
  };
  auto walked = beam::for_each_instruction(bytes, info, [&](std::uint8_t opcode, const std::vector<beam::Operand>& ops) {
    using Kind = beam::Operand::Kind;
    if (opcode == kFuncInfo) return true; // the module and function being defined
    std::vector<std::string> built;
    for (const auto& op : ops) {
      if (op.kind == Kind::atom) {
        if (const auto* name = atom_name(op.value)) {
          ++operands[*name];
          built.push_back(*name);
        }
      }
    }
    if ((opcode == kPutTuple2 || opcode == kPutMapAssoc || opcode == kPutMapExact || opcode == kUpdateRecord) &&
        built.size() > 1) {
      facts.groups.push_back(std::move(built));
    }
    auto arity = !ops.empty() && ops[0].kind == Kind::unsigned_integer ? ops[0].value : 0;
    auto loaded_in = [&](std::uint64_t reg) -> std::optional<std::string> {
      auto found = loaded.find(reg);
      if (found == loaded.end()) return std::nullopt;
      return found->second;
    };
    switch (opcode) {
    case kLabel:
      loaded.clear();
      break;
    case kMove:
      if (ops.size() == 2 && ops[1].kind == Kind::x_register) {
        const auto* name = ops[0].kind == Kind::atom ? atom_name(ops[0].value) : nullptr;
        if (name) {
          loaded[ops[1].value] = *name;
        } else {
          loaded.erase(ops[1].value);
        }
      }
      break;
    case kApply:
    case kApplyLast:
      // apply Arity: the arguments in x0..x(Arity-1), the module in
      // x(Arity), the function in x(Arity+1).
      facts.calls.push_back({loaded_in(arity + 1), "the apply instruction"});
      call(arity + 2);
      loaded.clear();
      break;
    case kCallExt:
    case kCallExtLast:
    case kCallExtOnly:
      if (ops.size() >= 2 && ops[1].kind == Kind::unsigned_integer && ops[1].value < info.imports.size()) {
        const auto& import = info.imports[ops[1].value];
        if (auto function_register = dynamic_import(import)) {
          std::optional<std::string> function;
          if (*function_register) function = loaded_in(**function_register);
          facts.calls.push_back({function, fmt::format("{}:{}/{}", import.module, import.function, import.arity)});
        } else if (const auto* row = mfa_import(import)) {
          // spawn(M, F, A) and kin: M and F in the registers row names.
          auto module = loaded_in(row->module_argument);
          auto function = loaded_in(row->module_argument + 1);
          auto how = fmt::format("{}:{}/{}", import.module, import.function, import.arity);
          if (module && function && !calls_its_arguments(*module, *function)) {
            facts.mfa_calls.push_back({*module, *function, &import, row});
            --operands[*module];
          } else if (module && function) {
            // spawn(Kernel, :apply, [System, :cmd, args]): what it calls is in its argument list.
            facts.calls.push_back({std::nullopt, fmt::format("{} of {}:{}", how, *module, *function)});
          } else {
            facts.calls.push_back({function, how});
          }
        }
      }
      call(arity);
      loaded.clear();
      break;
    case kCall:
    case kCallLast:
    case kCallOnly:
      call(arity);
      loaded.clear();
      break;
    default:
      // Any other instruction may write the x registers it names.
      for (const auto& op : ops) {
        if (op.kind == Kind::x_register) loaded.erase(op.value);
      }
      break;
    }
    return true;
  });
  for (const auto& [atom, count] : operands) {
    if (count > 0) facts.values.insert(atom);
  }
  for (const auto& atoms : literals.atoms) facts.values.insert(atoms.begin(), atoms.end());
  if (!walked) {
    // Code this engine cannot decode: every atom of the module may be a
    // value, and any of them may be the function of a dynamic call.
    facts = ValueFacts{};
    facts.decoded = false;
    for (std::size_t i = 1; i < info.atoms.size(); ++i) facts.values.insert(info.atoms[i]);
    for (const auto& atoms : literals.atoms) facts.values.insert(atoms.begin(), atoms.end());
    facts.groups.emplace_back(facts.values.begin(), facts.values.end());
    facts.calls.push_back({std::nullopt, "code this engine cannot decode"});
  }
  return facts;
}

// Judges the value facts of a BEAM: one value_flow finding per module and
// function that some dynamic call can reach. Returns how many it reported.
std::size_t audit_value_flow(const beam::BeamInfo& info, const beam::Literals& literals, const ValueFacts& facts,
                             std::string_view file, Report& report, RunsIn runs_in)
{
  const auto& rules = report.rules();
  if (facts.calls.empty()) return 0;
  std::map<std::string, std::string> modules; // module name -> its atom
  for (const auto& atom : facts.values) {
    auto module = module_from_atom(atom);
    if (!rules.value_flow_functions(module).empty()) modules.emplace(module, atom);
  }
  auto reaches = [&](const std::string& module, const std::string& function) {
    const auto& functions = rules.value_flow_functions(module);
    return std::find(functions.begin(), functions.end(), function) != functions.end();
  };
  // The modules and functions written together, for calls of a computed
  // function: per group, the modules in it times the atoms in it.
  std::set<std::pair<std::string, std::string>> together;
  bool computed_function = std::any_of(facts.calls.begin(), facts.calls.end(),
                                       [](const DynamicCall& call) { return !call.function; });
  if (computed_function) {
    for (const auto& group : facts.groups) {
      std::set<std::string> in_group;
      for (const auto& atom : group) {
        auto module = module_from_atom(atom);
        if (modules.contains(module)) in_group.insert(module);
      }
      for (const auto& module : in_group) {
        for (const auto& atom : group) {
          if (reaches(module, atom)) together.emplace(module, atom);
        }
      }
    }
  }
  // (module, function) -> the first call that can reach it
  std::map<std::pair<std::string, std::string>, const DynamicCall*> found;
  for (const auto& dynamic : facts.calls) {
    if (dynamic.function) {
      for (const auto& [module, atom] : modules) {
        if (reaches(module, *dynamic.function)) found.try_emplace({module, *dynamic.function}, &dynamic);
      }
    } else {
      for (const auto& key : together) found.try_emplace(key, &dynamic);
    }
  }
  // A module built at run time (an import of binary_to_atom, list_to_atom,
  // Module.concat, ...) can be any module: a dynamic call naming a function
  // the table makes dangerous reaches the strongest module that has it.
  const beam::Import* builder = nullptr;
  for (const auto& import : info.imports) {
    if (builds_module_name(module_from_atom(import.module), import.function)) builder = &import;
  }
  for (const auto& fun : literals.funs) { // &String.to_atom/1
    if (builds_module_name(module_from_atom(fun.target.module), fun.target.function)) builder = &fun.target;
  }
  std::map<std::string, const DynamicCall*> computed;
  if (builder != nullptr) {
    for (const auto& dynamic : facts.calls) {
      if (!dynamic.function || !rules.strongest_rule_named(*dynamic.function)) continue;
      auto rule = rules.strongest_rule_named(*dynamic.function);
      if (!found.contains({std::string(rule->module), *dynamic.function})) computed.try_emplace(*dynamic.function, &dynamic);
    }
  }
  std::size_t reported = 0;
  for (const auto& [function, dynamic] : computed) {
    auto rule = *rules.strongest_rule_named(function);
    std::string upper(to_string(rule.severity));
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    Finding finding;
    finding.type = "value_flow";
    finding.operation = std::string(rule.operation);
    finding.severity = rule.severity;
    finding.runs_in = runs_in;
    finding.file = std::string(file);
    finding.module = std::string(rule.module);
    finding.function = function;
    finding.matched_text = fmt::format("{} + {} + {}", erlang_mfa(*builder), function, dynamic->how);
    finding.surrounding_code = fmt::format("module {} builds atoms with {} and makes a dynamic call ({}) of {}",
                                           info.module, erlang_mfa(*builder), dynamic->how, function);
    finding.message = fmt::format("{} reachable through a module built at run time in bytecode: {} builds atoms with {} "
                                  "and calls {} through {} [{} RISK]",
                                  display_call(rule.module, function), info.module, erlang_mfa(*builder), function,
                                  dynamic->how, upper);
    finding.related = RelatedPlace{0, 0, erlang_mfa(*builder), "module computed at run time"};
    report.add(std::move(finding));
    ++reported;
  }
  for (const auto& [key, dynamic] : found) {
    const auto& [module, function] = key;
    auto rule = rules.lookup(module, function);
    if (!rule || rule->severity == Severity::low) continue;
    const auto& atom = modules.at(module);
    std::string upper(to_string(rule->severity));
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    Finding finding;
    finding.type = "value_flow";
    finding.operation = std::string(rule->operation);
    finding.severity = rule->severity;
    finding.runs_in = runs_in;
    finding.file = std::string(file);
    finding.module = module;
    finding.function = function;
    finding.matched_text = fmt::format("'{}' + {} + {}", atom, function, dynamic->how);
    finding.surrounding_code = fmt::format(
      "module {} uses '{}' as a value and makes a dynamic call ({}) {}", info.module, atom, dynamic->how,
      dynamic->function ? fmt::format("of {}", function) : fmt::format("of a computed function; {} is written with it", function));
    finding.message = fmt::format("{} reachable through a module value in bytecode: {} uses {} as a value and calls "
                                  "{} through {}{} [{} RISK]",
                                  display_call(module, function), info.module, module,
                                  dynamic->function ? function : "a computed function", dynamic->how,
                                  facts.decoded ? "" : " (its code could not be decoded: judged on its atoms)", upper);
    finding.related = RelatedPlace{0, 0, atom, "module used as a value"};
    report.add(std::move(finding));
    ++reported;
  }
  return reported;
}

// spawn(System, :cmd, args), Task.start(:os, :cmd, ['id']) and kin: the
// module and function a function that takes M, F, A is given are judged as
// a call of them, once per module, function and import that calls them.
void audit_mfa_calls(const beam::BeamInfo& info, const ValueFacts& facts, std::string_view file, Report& report,
                     RunsIn runs_in)
{
  std::set<std::tuple<std::string, std::string, const beam::Import*>> judged;
  for (const auto& call : facts.mfa_calls) {
    if (!judged.emplace(call.module, call.function, call.through).second) continue;
    auto module = module_from_atom(call.module);
    auto rule = report.rules().lookup(module, call.function);
    if (!rule) continue;
    std::string upper(to_string(rule->severity));
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    auto through = erlang_mfa(*call.through);
    Finding finding;
    finding.runs_in = runs_in;
    finding.file = std::string(file);
    finding.module = module;
    finding.function = call.function;
    finding.type = rule->operation == "restricted_module" ? "restricted_module" : "dangerous_operation";
    finding.operation = std::string(rule->operation);
    finding.severity = rule->severity;
    finding.matched_text = fmt::format("{}('{}', {}, ...)", through, call.module, call.function);
    finding.surrounding_code = fmt::format("module {} calls {} with '{}' and {}", info.module, through, call.module,
                                           call.function);
    finding.message = fmt::format("{} detected in bytecode: {} calls {} through {} {} [{} RISK]", rule->message,
                                  info.module, display_call(module, call.function), through, call.row->where, upper);
    report.add(std::move(finding));
  }
}

} // namespace

void audit_beam(const beam::BeamInfo& info, std::string_view bytes, std::string_view file, Report& report,
                RunsIn runs_in, bool task_references)
{
  const auto& rules = report.rules();
  auto literals = beam::read_literals(bytes, info);
  if (!literals) {
    report_unverifiable(report, file,
                        fmt::format("A BEAM whose literal table cannot be decoded cannot be audited: {}",
                                    literals.error().reason));
    return;
  }
  if (task_references) audit_mix_task_references(info, *literals, file, report);
  auto facts = value_facts(info, bytes, *literals);
  auto value_flows = audit_value_flow(info, *literals, facts, file, report, runs_in);
  audit_mfa_calls(info, facts, file, report, runs_in);
  auto judge = [&](const std::string& module, const std::string& function, std::uint32_t arity,
                   std::string matched, std::string how) {
    auto rule = rules.lookup(module, function);
    if (!rule) return;
    std::string upper(to_string(rule->severity));
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    Finding finding;
    finding.runs_in = runs_in;
    finding.file = std::string(file);
    finding.module = module;
    finding.function = function;
    finding.arity = arity;
    finding.type = rule->operation == "restricted_module" ? "restricted_module" : "dangerous_import";
    finding.operation = std::string(rule->operation);
    finding.severity = rule->severity;
    finding.matched_text = matched;
    finding.surrounding_code = fmt::format("module {} {} {}", info.module, how, matched);
    finding.message = fmt::format("{} detected in bytecode: {} {} {} [{} RISK]", rule->message, info.module, how,
                                  matched, upper);
    report.add(std::move(finding));
  };
  for (const auto& import : info.imports) {
    auto module = module_from_atom(import.module);
    if (module == ":erlang" && import.function == "apply" && (import.arity == 2 || import.arity == 3)) {
      // The compiler turns apply with a literal module into a direct call;
      // an import of erlang:apply means the module or function is computed.
      // A low warning unless a module value makes it a value_flow threat.
      if (value_flows > 0) continue;
      Finding finding;
      finding.runs_in = runs_in;
      finding.file = std::string(file);
      finding.module = module;
      finding.function = import.function;
      finding.arity = import.arity;
      finding.matched_text = erlang_mfa(import);
      finding.surrounding_code = fmt::format("module {} imports {}", info.module, erlang_mfa(import));
      finding.type = "dynamic_dispatch";
      finding.operation = "dynamic_dispatch";
      finding.severity = Severity::low;
      finding.message = fmt::format("{} calls erlang:apply/{} with a computed module or function",
                                    info.module, import.arity);
      report.add(std::move(finding));
      continue;
    }
    judge(module, import.function, import.arity, erlang_mfa(import), "imports");
  }
  // fun M:F/A written as a literal calls M:F/A with no import (once per
  // function, and not again when the module imports it too).
  std::set<std::tuple<std::string, std::string, std::uint32_t>> judged;
  for (const auto& import : info.imports) judged.emplace(import.module, import.function, import.arity);
  for (const auto& fun : literals->funs) {
    if (!judged.emplace(fun.target.module, fun.target.function, fun.target.arity).second) continue;
    judge(module_from_atom(fun.target.module), fun.target.function, fun.target.arity,
          fmt::format("fun {}", erlang_mfa(fun.target)), "holds the literal");
  }
}

namespace {

// Where the code of a BEAM a compile produced runs (see BeamOrigin).
RunsIn compiled_beam_runs_in(std::string_view bytes, const beam::BeamInfo& info)
{
  if (!info.module.starts_with(kMixTaskAtom)) return RunsIn::host;
  // A host that loads the BEAM runs its on_load function; a stream this
  // engine cannot decode counts as having one.
  auto on_load = beam::has_on_load(bytes, info);
  return on_load && !*on_load ? RunsIn::mix : RunsIn::host;
}

} // namespace

void audit_beam_file(const std::filesystem::path& path, std::string_view file, Report& report,
                     BeamOrigin origin)
{
  ++report.result().beams_audited;
  // Read once: what is parsed is what is audited. A shipped BEAM under
  // another name than its module's is read all the same.
  auto bytes = util::read_file(path, beam::Limits{}.max_file_bytes);
  auto info = bytes ? beam::parse_beam(*bytes)
                    : std::expected<beam::BeamInfo, beam::BeamError>(std::unexpected(beam::BeamError{bytes.error()}));
  if (!info) {
    report_unverifiable(report, file,
                        fmt::format("A BEAM file that cannot be read or parsed cannot be audited: {}",
                                    info.error().reason));
    return;
  }
  auto runs_in = origin == BeamOrigin::compiled ? compiled_beam_runs_in(*bytes, *info) : RunsIn::host;
  bool task_references =
    origin == BeamOrigin::compiled && runs_in == RunsIn::host && report.scope() == core::ScanScope::compiled;
  audit_beam(*info, *bytes, file, report, runs_in, task_references);
}

void audit_app_file(const std::filesystem::path& path, std::string_view file, Report& report)
{
  if (report.scope() != core::ScanScope::compiled) return;
  auto text = util::read_file(path, 16ull << 20);
  if (!text) return; // the compile wrote it; collect_outputs already read it
  // {mod, {Module, Args}}: the tokens, so spacing and comments do not matter.
  auto tokens = tokenize_erlang(*text);
  using Kind = ErlangToken::Kind;
  for (std::size_t i = 0; i + 3 < tokens.size(); ++i) {
    if (tokens[i].kind != Kind::atom || tokens[i].value != "mod" || tokens[i + 1].text != "," ||
        tokens[i + 2].text != "{" || tokens[i + 3].kind != Kind::atom) {
      continue;
    }
    const auto& module = tokens[i + 3].value;
    // An escape could spell the name another way: judged as if it were a task.
    if (!module.starts_with(kMixTaskAtom) && module.find('\\') == std::string::npos) continue;
    auto finding = mix_task_reference(
      file, module,
      fmt::format("The application's callback module is {}: starting the application would run a "
                  "Mix task, whose code is judged only as code Mix runs, in the host [HIGH RISK]",
                  module_from_atom(module)));
    finding.line = tokens[i].line;
    finding.column = tokens[i].column;
    report.add(std::move(finding));
  }
}

} // namespace sandbox::scan
