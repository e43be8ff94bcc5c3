#include "core/error.h"

#include <gtest/gtest.h>
#include <set>

namespace sandbox::core {

namespace {

using nlohmann::json;

// Every kind with its DESIGN.md fields, each set to a recognisable value.
struct Case {
  Error error;
  std::string type;
  json fields; // the exact object to_json must produce, without "type"
};

std::vector<Case> cases()
{
  Diagnostic diagnostic{"lib/broken.ex", 5, 3, Severity::error, "undefined function x/0"};
  return {
      {CompilationFailed{2, "boom", {diagnostic}},
       "compilation_failed",
       {{"exit_code", 2},
        {"output", "boom"},
        {"diagnostics",
         {{{"file", "lib/broken.ex"},
           {"line", 5},
           {"column", 3},
           {"severity", "error"},
           {"message", "undefined function x/0"}}}}}},
      {CompilationTimeout{2000}, "compilation_timeout", {{"timeout", 2000}}},
      {CompilerCrash{"signal", "killed by SIGSEGV", {{"signal", 11}}},
       "compiler_crash",
       {{"kind", "signal"}, {"error", "killed by SIGSEGV"}, {"context", {{"signal", 11}}}}},
      {InvalidSandboxPath{"/nope", "does not exist"},
       "invalid_sandbox_path",
       {{"path", "/nope"}, {"reason", "does not exist"}}},
      {BeamValidationFailed{"A.beam", "truncated"},
       "beam_validation_failed",
       {{"file", "A.beam"}, {"reason", "truncated"}}},
      {ResourceLimitExceeded{LimitType::memory_limit, 300.0, 256.0, {}, {}},
       "resource_limit_exceeded",
       {{"limit_type", "memory_limit"}, {"details", {{"current", 300.0}, {"limit", 256.0}}}}},
      {ResourceLimitExceeded{LimitType::cpu_limit, 95.5, 80.0, {}, {}},
       "resource_limit_exceeded",
       {{"limit_type", "cpu_limit"}, {"details", {{"current", 95.5}, {"limit", 80.0}}}}},
      {ResourceLimitExceeded{LimitType::max_processes, 101, 100, {}, {}},
       "resource_limit_exceeded",
       {{"limit_type", "max_processes"}, {"details", {{"current", 101.0}, {"limit", 100.0}}}}},
      {ResourceLimitExceeded{LimitType::memory_limit, 300.0, 256.0, "mix compile",
                             "raise it with --memory-limit"},
       "resource_limit_exceeded",
       {{"limit_type", "memory_limit"},
        {"details", {{"current", 300.0}, {"limit", 256.0}}},
        {"compiling", "mix compile"},
        {"hint", "raise it with --memory-limit"}}},
      {ResourceMonitorFailed{"no cgroup"}, "resource_monitor_failed", {{"reason", "no cgroup"}}},
      {SecurityThreatsDetected{json::array({{{"file", "a.ex"}, {"line", 1}}})},
       "security_threats_detected",
       {{"threats", json::array({{{"file", "a.ex"}, {"line", 1}}})}}},
      {SecurityScanFailed{"parse error"}, "security_scan_failed", {{"reason", "parse error"}}},
      {JailSetupFailed{"mount", "EPERM"},
       "jail_setup_failed",
       {{"stage", "mount"}, {"reason", "EPERM"}}},
      {DependenciesUnavailable{{"jason", "plug"}, "no registry"},
       "dependencies_unavailable",
       {{"dependencies", {"jason", "plug"}}, {"reason", "no registry"}}},
      {InvalidOption{"timeout", "out of range"},
       "invalid_option",
       {{"option", "timeout"}, {"reason", "out of range"}}},
      {NoBytecodeGenerated{"no defmodule"}, "no_bytecode_generated", {{"reason", "no defmodule"}}},
      {OutputLimitExceeded{1 << 20}, "output_limit_exceeded", {{"limit", 1 << 20}}},
      {PermissionDenied{"/root/secret", "read"},
       "permission_denied",
       {{"path", "/root/secret"}, {"operation", "read"}}},
      {DependencyVerificationFailed{"jason", "1.4.5", "outer checksum", "ab12", "cd34"},
       "dependency_verification_failed",
       {{"dependency", "jason"},
        {"version", "1.4.5"},
        {"reason", "outer checksum"},
        {"expected", "ab12"},
        {"actual", "cd34"}}},
  };
}

TEST(Error, EveryKindHasItsTypeAndFieldsByName)
{
  std::set<std::string> types;
  for (const auto& c : cases()) {
    EXPECT_EQ(error_type(c.error), c.type);
    auto out = to_json(c.error);
    EXPECT_EQ(out["type"], c.type) << out;
    auto fields = out;
    fields.erase("type");
    EXPECT_EQ(fields, c.fields) << c.type;
    types.insert(c.type);
  }
  // One case per alternative of Error.
  EXPECT_EQ(types.size(), std::variant_size_v<Error>);
}

TEST(Error, SpecificationKindsAreSpelledAsTheGuide)
{
  EXPECT_EQ(error_type(CompilationFailed{}), "compilation_failed");
  EXPECT_EQ(error_type(CompilationTimeout{}), "compilation_timeout");
  EXPECT_EQ(error_type(CompilerCrash{}), "compiler_crash");
  EXPECT_EQ(error_type(InvalidSandboxPath{}), "invalid_sandbox_path");
  EXPECT_EQ(error_type(BeamValidationFailed{}), "beam_validation_failed");
  EXPECT_EQ(error_type(ResourceLimitExceeded{}), "resource_limit_exceeded");
  EXPECT_EQ(error_type(ResourceMonitorFailed{}), "resource_monitor_failed");
  EXPECT_EQ(error_type(SecurityThreatsDetected{}), "security_threats_detected");
  EXPECT_EQ(error_type(SecurityScanFailed{}), "security_scan_failed");
}

TEST(Error, DescribeIsOneLineNamingTheCause)
{
  for (const auto& c : cases()) {
    auto text = describe(c.error);
    EXPECT_FALSE(text.empty()) << c.type;
    EXPECT_EQ(text.find('\n'), std::string::npos) << c.type << ": " << text;
  }
  EXPECT_EQ(describe(CompilationFailed{1, "", {}}), "Exit code 1");
  EXPECT_NE(describe(CompilationTimeout{2000}).find("2000"), std::string::npos);
  EXPECT_NE(describe(InvalidOption{"cpu_limit", "150 is out of range"}).find("cpu_limit"),
            std::string::npos);
  EXPECT_NE(describe(DependenciesUnavailable{{"jason"}, "x"}).find("jason"), std::string::npos);
  EXPECT_NE(describe(BeamValidationFailed{"A.beam", "bad"}).find("A.beam"), std::string::npos);
}

TEST(Error, DiagnosticJsonUsesNullForUnknownPositions)
{
  auto out = to_json(Diagnostic{"", 0, 0, Severity::warning, "m"});
  EXPECT_TRUE(out["line"].is_null());
  EXPECT_TRUE(out["column"].is_null());
  EXPECT_EQ(out["severity"], "warning");
  EXPECT_EQ(out["file"], "");
  EXPECT_EQ(to_json(Diagnostic{"a", 1, 0, Severity::info, "m"})["severity"], "info");
  EXPECT_EQ(to_string(LimitType::max_processes), "max_processes");
}

} // namespace

} // namespace sandbox::core
