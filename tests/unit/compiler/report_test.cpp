#include "compiler/report.h"

#include <gtest/gtest.h>

namespace sandbox::compiler {

namespace {

using nlohmann::json;

json report_of(const json& result)
{
  auto report = compilation_report(result);
  EXPECT_TRUE(report) << result.dump() << ": " << (report ? "" : report.error());
  return report ? *report : json();
}

json failure(json error)
{
  return {{"ok", false}, {"error", std::move(error)}};
}

TEST(Report, SuccessSummaryAndMetrics)
{
  json result = {{"ok", true},
                 {"beam_files", {"/t/ebin/A.beam", "/t/ebin/B.beam", "/t/ebin/C.beam"}},
                 {"compilation_time", 1234},
                 {"output", "Compiling 3 files (.ex)\n"},
                 {"beam_bytes", 4096},
                 {"warnings",
                  {{{"file", "lib/a.ex"},
                    {"line", 3},
                    {"column", nullptr},
                    {"severity", "warning"},
                    {"message", "variable \"y\" is unused"}}}}};
  auto report = report_of(result);
  EXPECT_EQ(report["status"], "success");
  EXPECT_EQ(report["summary"], "Compilation successful (1234ms)");
  EXPECT_EQ(report["metrics"]["compilation_time"], 1234);
  EXPECT_EQ(report["metrics"]["beam_files_count"], 3);
  EXPECT_EQ(report["metrics"]["output_size"], 24);
  EXPECT_EQ(report["metrics"]["beam_bytes"], 4096);
  EXPECT_EQ(report["metrics"]["warnings_count"], 1);
  auto details = report["details"].get<std::string>();
  EXPECT_NE(details.find("lib/a.ex:3: warning: variable \"y\" is unused"), std::string::npos)
      << details;
  auto text = format_report(report);
  EXPECT_EQ(text.rfind("Compilation successful (1234ms)\n", 0), 0U) << text;
  EXPECT_NE(text.find("lib/a.ex:3"), std::string::npos);
}

TEST(Report, SuccessListsSuspiciousArtifacts)
{
  json result = {{"ok", true},
                 {"compilation_time", 5},
                 {"suspicious_artifacts",
                  {{{"path", "ebin/evil.beam"},
                    {"kind", "symlink"},
                    {"severity", "high"},
                    {"message", "symbolic link"}}}}};
  auto details = report_of(result)["details"].get<std::string>();
  EXPECT_NE(details.find("ebin/evil.beam"), std::string::npos) << details;
  EXPECT_NE(details.find("high"), std::string::npos) << details;
}

TEST(Report, MinimalSuccess)
{
  auto report = report_of({{"ok", true}});
  EXPECT_EQ(report["summary"], "Compilation successful (0ms)");
  EXPECT_EQ(report["metrics"]["beam_files_count"], 0);
}

TEST(Report, CompilationFailedSummaryAndDetails)
{
  auto report = report_of(
      failure({{"type", "compilation_failed"},
               {"exit_code", 1},
               {"output", "** (CompileError) lib/my_module.ex:10: undefined function foo/0\n"},
               {"diagnostics",
                {{{"file", "lib/my_module.ex"},
                  {"line", 10},
                  {"column", nullptr},
                  {"severity", "error"},
                  {"message", "undefined function foo/0"}},
                 {{"file", "lib/other.ex"},
                  {"line", 2},
                  {"column", nullptr},
                  {"severity", "warning"},
                  {"message", "unused"}}}}}));
  EXPECT_EQ(report["status"], "failure");
  EXPECT_EQ(report["summary"], "Compilation failed: Exit code 1");
  EXPECT_EQ(report["details"], "lib/my_module.ex:10: error: undefined function foo/0");
  EXPECT_EQ(report["error_type"], "compilation_failed");
  EXPECT_EQ(report["metrics"], json({{"compilation_time", 0}, {"beam_files_count", 0}}));
}

TEST(Report, CompilationFailedWithoutDiagnosticsShowsTheOutput)
{
  auto report = report_of(
      failure({{"type", "compilation_failed"}, {"exit_code", 3}, {"output", "raw output"}}));
  EXPECT_EQ(report["summary"], "Compilation failed: Exit code 3");
  EXPECT_EQ(report["details"], "raw output");
}

TEST(Report, FailureSummaryPerKind)
{
  EXPECT_EQ(report_of(failure({{"type", "compilation_timeout"}, {"timeout", 2000}}))["summary"],
            "Compilation failed: timed out after 2000ms");
  auto limit = report_of(failure({{"type", "resource_limit_exceeded"},
                                  {"limit_type", "memory_limit"},
                                  {"details", {{"current", 300}, {"limit", 256}}}}));
  EXPECT_EQ(limit["summary"], "Compilation failed: memory_limit exceeded");
  EXPECT_EQ(limit["details"], "current 300 > limit 256");
  auto threats = report_of(failure(
      {{"type", "security_threats_detected"},
       {"threats",
        {{{"file", "lib/a.ex"}, {"line", 4}, {"severity", "high"}, {"message", "System.cmd"}},
         {{"file", "lib/b.ex"}, {"line", 9}, {"severity", "critical"}, {"message", "os:cmd"}}}}}));
  EXPECT_EQ(threats["summary"], "Compilation failed: 2 security threat(s) detected");
  EXPECT_EQ(threats["details"], "lib/a.ex:4 [high] System.cmd\nlib/b.ex:9 [critical] os:cmd");

  auto path = report_of(
      failure({{"type", "invalid_sandbox_path"}, {"path", "/nope"}, {"reason", "does not exist"}}));
  EXPECT_EQ(path["summary"], "Compilation failed: invalid_sandbox_path");
  EXPECT_EQ(path["details"], "reason: does not exist\npath: /nope");
  EXPECT_EQ(path["error_type"], "invalid_sandbox_path");

  for (const char* type : {"compiler_crash", "beam_validation_failed", "resource_monitor_failed",
                           "security_scan_failed", "jail_setup_failed", "dependencies_unavailable",
                           "invalid_option", "no_bytecode_generated", "output_limit_exceeded"}) {
    auto report = report_of(failure({{"type", type}, {"reason", "why"}}));
    EXPECT_EQ(report["status"], "failure");
    EXPECT_EQ(report["summary"], std::string("Compilation failed: ") + type);
    EXPECT_EQ(report["error_type"], type);
  }
}

TEST(Report, ToleratesWrongFieldTypes)
{
  auto report = report_of(failure({{"type", "compilation_failed"}, {"exit_code", "one"}}));
  EXPECT_EQ(report["summary"], "Compilation failed: Exit code 1");
  auto success = report_of({{"ok", true}, {"compilation_time", "fast"}, {"warnings", 5}});
  EXPECT_EQ(success["summary"], "Compilation successful (0ms)");
}

TEST(Report, RejectsWhatIsNotAResult)
{
  for (const json& bad :
       {json(nullptr), json::array({1, 2}), json("ok"), json::object(), json({{"ok", "true"}}),
        json({{"ok", 1}}), json({{"ok", false}}), json({{"ok", false}, {"error", "boom"}})}) {
    auto report = compilation_report(bad);
    EXPECT_FALSE(report) << bad.dump();
    if (!report) {
      EXPECT_NE(report.error().find("not a compile result"), std::string::npos);
    }
  }
}

} // namespace

} // namespace sandbox::compiler
