#include "core/error.h"

#include <fmt/format.h>

namespace sandbox::core {

namespace {

template <class... Ts> struct Overloaded : Ts... {
  using Ts::operator()...;
};
// Spelled out for compilers without aggregate deduction (clang 14, the fuzz build).
template <class... Ts> Overloaded(Ts...) -> Overloaded<Ts...>;

nlohmann::json diagnostics_json(const std::vector<Diagnostic>& diagnostics)
{
  auto out = nlohmann::json::array();
  for (const auto& d : diagnostics) {
    out.push_back(to_json(d));
  }
  return out;
}

} // namespace

std::string_view to_string(LimitType type)
{
  switch (type) {
  case LimitType::memory_limit: return "memory_limit";
  case LimitType::cpu_limit: return "cpu_limit";
  case LimitType::max_processes: return "max_processes";
  }
  return "memory_limit";
}

std::string_view error_type(const Error& error)
{
  return std::visit(
    Overloaded{
      [](const CompilationFailed&) { return std::string_view("compilation_failed"); },
      [](const CompilationTimeout&) { return std::string_view("compilation_timeout"); },
      [](const CompilerCrash&) { return std::string_view("compiler_crash"); },
      [](const InvalidSandboxPath&) { return std::string_view("invalid_sandbox_path"); },
      [](const BeamValidationFailed&) { return std::string_view("beam_validation_failed"); },
      [](const ResourceLimitExceeded&) { return std::string_view("resource_limit_exceeded"); },
      [](const ResourceMonitorFailed&) { return std::string_view("resource_monitor_failed"); },
      [](const SecurityThreatsDetected&) {
        return std::string_view("security_threats_detected");
      },
      [](const SecurityScanFailed&) { return std::string_view("security_scan_failed"); },
      [](const JailSetupFailed&) { return std::string_view("jail_setup_failed"); },
      [](const DependenciesUnavailable&) { return std::string_view("dependencies_unavailable"); },
      [](const InvalidOption&) { return std::string_view("invalid_option"); },
      [](const NoBytecodeGenerated&) { return std::string_view("no_bytecode_generated"); },
      [](const OutputLimitExceeded&) { return std::string_view("output_limit_exceeded"); },
      [](const PermissionDenied&) { return std::string_view("permission_denied"); },
      [](const DependencyVerificationFailed&) {
        return std::string_view("dependency_verification_failed");
      },
    },
    error);
}

nlohmann::json to_json(const Error& error)
{
  nlohmann::json out;
  out["type"] = error_type(error);
  std::visit(Overloaded{
               [&](const CompilationFailed& e) {
                 out["exit_code"] = e.exit_code;
                 out["output"] = e.output;
                 out["diagnostics"] = diagnostics_json(e.diagnostics);
               },
               [&](const CompilationTimeout& e) { out["timeout"] = e.timeout_ms; },
               [&](const CompilerCrash& e) {
                 out["kind"] = e.kind;
                 out["error"] = e.error;
                 out["context"] = e.context;
               },
               [&](const InvalidSandboxPath& e) {
                 out["path"] = e.path;
                 out["reason"] = e.reason;
               },
               [&](const BeamValidationFailed& e) {
                 out["file"] = e.file;
                 out["reason"] = e.reason;
               },
               [&](const ResourceLimitExceeded& e) {
                 out["limit_type"] = to_string(e.limit_type);
                 out["details"] = {{"current", e.current}, {"limit", e.limit}};
                 if (!e.compiling.empty()) {
                   out["compiling"] = e.compiling;
                 }
                 if (!e.hint.empty()) {
                   out["hint"] = e.hint;
                 }
               },
               [&](const ResourceMonitorFailed& e) { out["reason"] = e.reason; },
               [&](const SecurityThreatsDetected& e) { out["threats"] = e.threats; },
               [&](const SecurityScanFailed& e) { out["reason"] = e.reason; },
               [&](const JailSetupFailed& e) {
                 out["stage"] = e.stage;
                 out["reason"] = e.reason;
               },
               [&](const DependenciesUnavailable& e) {
                 out["dependencies"] = e.dependencies;
                 out["reason"] = e.reason;
               },
               [&](const InvalidOption& e) {
                 out["option"] = e.option;
                 out["reason"] = e.reason;
               },
               [&](const NoBytecodeGenerated& e) { out["reason"] = e.reason; },
               [&](const OutputLimitExceeded& e) { out["limit"] = e.limit_bytes; },
               [&](const PermissionDenied& e) {
                 out["path"] = e.path;
                 out["operation"] = e.operation;
               },
               [&](const DependencyVerificationFailed& e) {
                 out["dependency"] = e.dependency;
                 out["version"] = e.version;
                 out["reason"] = e.reason;
                 out["expected"] = e.expected;
                 out["actual"] = e.actual;
               },
             },
             error);
  return out;
}

std::string describe(const Error& error)
{
  return std::visit(
    Overloaded{
      [](const CompilationFailed& e) { return fmt::format("Exit code {}", e.exit_code); },
      [](const CompilationTimeout& e) { return fmt::format("timed out after {}ms", e.timeout_ms); },
      [](const CompilerCrash& e) { return fmt::format("compiler crashed ({}): {}", e.kind, e.error); },
      [](const InvalidSandboxPath& e) {
        return fmt::format("invalid sandbox path {}: {}", e.path, e.reason);
      },
      [](const BeamValidationFailed& e) {
        return fmt::format("BEAM validation failed for {}: {}", e.file, e.reason);
      },
      [](const ResourceLimitExceeded& e) {
        std::string text = fmt::format("{} exceeded", to_string(e.limit_type));
        if (!e.compiling.empty()) {
          text += " while compiling " + e.compiling;
        }
        text += fmt::format(": {} > {}", e.current, e.limit);
        if (!e.hint.empty()) {
          text += "; " + e.hint;
        }
        return text;
      },
      [](const ResourceMonitorFailed& e) { return "resource monitor failed: " + e.reason; },
      [](const SecurityThreatsDetected& e) {
        return fmt::format("{} security threat(s) detected", e.threats.size());
      },
      [](const SecurityScanFailed& e) { return "security scan failed: " + e.reason; },
      [](const JailSetupFailed& e) {
        return fmt::format("jail setup failed at {}: {}", e.stage, e.reason);
      },
      [](const DependenciesUnavailable& e) {
        std::string names;
        for (const auto& d : e.dependencies) {
          names += (names.empty() ? "" : ", ") + d;
        }
        return fmt::format("dependencies unavailable ({}): {}", names, e.reason);
      },
      [](const InvalidOption& e) { return fmt::format("invalid option {}: {}", e.option, e.reason); },
      [](const NoBytecodeGenerated& e) { return "no bytecode generated: " + e.reason; },
      [](const OutputLimitExceeded& e) {
        return fmt::format("output exceeded {} bytes", e.limit_bytes);
      },
      [](const PermissionDenied& e) {
        return fmt::format("permission denied: the caller may not {} {}", e.operation, e.path);
      },
      [](const DependencyVerificationFailed& e) {
        auto text = fmt::format("dependency {} {} failed verification: {}", e.dependency,
                                e.version, e.reason);
        if (!e.expected.empty() || !e.actual.empty()) {
          text += fmt::format(" (expected {}, got {})", e.expected, e.actual);
        }
        return text;
      },
    },
    error);
}

} // namespace sandbox::core
