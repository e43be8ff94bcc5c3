#include "scan/beam_audit.h"

#include "scan/erlang_scanner.h"
#include "util/fs.h"

#include <fmt/format.h>

#include <algorithm>

namespace sandbox::scan {

namespace {

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
// or start it; the atom table holds every module the code names (a call, a
// capture, a module passed as a value), whatever macro wrote it.
void audit_mix_task_references(const beam::BeamInfo& info, std::string_view file, Report& report)
{
  for (std::size_t i = 1; i < info.atoms.size(); ++i) {
    const auto& atom = info.atoms[i];
    if (!atom.starts_with(kMixTaskAtom)) continue;
    auto finding = mix_task_reference(
      file, atom,
      fmt::format("{} names the Mix task {}: code a host may load must not reach a task, whose code "
                  "is judged only as code Mix runs [HIGH RISK]",
                  info.module, module_from_atom(atom)));
    finding.surrounding_code = fmt::format("module {} names {}", info.module, atom);
    report.add(std::move(finding));
  }
}

} // namespace

void audit_beam(const beam::BeamInfo& info, std::string_view file, Report& report, RunsIn runs_in)
{
  const auto& rules = report.rules();
  for (const auto& import : info.imports) {
    auto module = module_from_atom(import.module);
    Finding finding;
    finding.runs_in = runs_in;
    finding.file = std::string(file);
    finding.module = module;
    finding.function = import.function;
    finding.arity = import.arity;
    finding.matched_text = erlang_mfa(import);
    finding.surrounding_code = fmt::format("module {} imports {}", info.module, erlang_mfa(import));
    if (module == ":erlang" && import.function == "apply" && (import.arity == 2 || import.arity == 3)) {
      // The compiler turns apply with a literal module into a direct call;
      // an import of erlang:apply means the module or function is computed.
      finding.type = "dynamic_dispatch";
      finding.operation = "dynamic_dispatch";
      finding.severity = Severity::low;
      finding.message = fmt::format("{} calls erlang:apply/{} with a computed module or function",
                                    info.module, import.arity);
      report.add(std::move(finding));
      continue;
    }
    auto rule = rules.lookup(module, import.function);
    if (!rule) continue;
    std::string upper(to_string(rule->severity));
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    finding.type = rule->operation == "restricted_module" ? "restricted_module" : "dangerous_import";
    finding.operation = std::string(rule->operation);
    finding.severity = rule->severity;
    finding.message = fmt::format("{} detected in bytecode: {} imports {} [{} RISK]", rule->message,
                                  info.module, erlang_mfa(import), upper);
    report.add(std::move(finding));
  }
}

namespace {

// Where the code of a BEAM a compile produced runs (see BeamOrigin).
RunsIn compiled_beam_runs_in(const std::filesystem::path& path, const beam::BeamInfo& info)
{
  if (!info.module.starts_with(kMixTaskAtom)) return RunsIn::host;
  // A host that loads the BEAM runs its on_load function; a stream this
  // engine cannot decode counts as having one.
  auto bytes = util::read_file(path, beam::Limits{}.max_file_bytes);
  if (!bytes) return RunsIn::host;
  auto on_load = beam::has_on_load(*bytes, info);
  return on_load && !*on_load ? RunsIn::mix : RunsIn::host;
}

} // namespace

void audit_beam_file(const std::filesystem::path& path, std::string_view file, Report& report,
                     BeamOrigin origin)
{
  ++report.result().beams_audited;
  auto info = beam::validate_beam_file(path);
  if (!info) {
    // validate_beam_file also wants the module named after the file; a
    // shipped BEAM under another name is still read for its imports.
    auto parsed = [&]() -> std::expected<beam::BeamInfo, beam::BeamError> {
      auto bytes = util::read_file(path, beam::Limits{}.max_file_bytes);
      if (!bytes) return std::unexpected(beam::BeamError{bytes.error()});
      return beam::parse_beam(*bytes);
    }();
    if (!parsed) {
      Finding finding;
      finding.type = "unverifiable_beam";
      finding.operation = "code_loading";
      finding.severity = Severity::high;
      finding.file = std::string(file);
      finding.message = fmt::format("A BEAM file that cannot be read or parsed cannot be audited: {}",
                                    info.error().reason);
      finding.matched_text = std::string(file);
      report.add(std::move(finding));
      return;
    }
    info = std::move(*parsed);
  }
  auto runs_in = origin == BeamOrigin::compiled ? compiled_beam_runs_in(path, *info) : RunsIn::host;
  if (origin == BeamOrigin::compiled && runs_in == RunsIn::host && report.scope() == core::ScanScope::compiled) {
    audit_mix_task_references(*info, file, report);
  }
  audit_beam(*info, file, report, runs_in);
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
