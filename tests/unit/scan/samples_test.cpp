// The labelled samples under tests/data/scan: each file is scanned with the
// options of its line in expectations.txt and must give the expected verdict.

#include "core/options.h"
#include "scan/scanner.h"
#include "util/fs.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sandbox::scan {
namespace {

const std::filesystem::path kData = std::filesystem::path(SANDBOX_TEST_DATA) / "scan";

struct Sample {
  std::string file, label, verdict;
  std::vector<std::string> operations;
  ScanConfig config;
};

std::string trim(std::string text)
{
  auto begin = text.find_first_not_of(" \t");
  auto end = text.find_last_not_of(" \t");
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

std::vector<std::string> words(const std::string& text)
{
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

std::vector<Sample> load_samples()
{
  std::ifstream in(kData / "expectations.txt");
  std::vector<Sample> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::istringstream parts(line);
    for (std::string field; std::getline(parts, field, '|');) fields.push_back(trim(field));
    while (fields.size() < 5) fields.emplace_back();
    Sample sample;
    sample.file = fields[0];
    sample.label = fields[1];
    sample.verdict = fields[2];
    sample.operations = words(fields[3]);
    sample.config.restricted_modules = core::default_restricted_modules();
    bool restricted_replaced = false;
    for (const auto& option : words(fields[4])) {
      auto eq = option.find('=');
      auto key = option.substr(0, eq);
      auto value = option.substr(eq + 1);
      if (key == "depth") sample.config.scan_depth = std::stoi(value);
      if (key == "allow") sample.config.allowed_operations.push_back(value);
      if (key == "restrict") {
        if (!restricted_replaced) sample.config.restricted_modules.clear();
        restricted_replaced = true;
        sample.config.restricted_modules.push_back(value);
      }
    }
    out.push_back(std::move(sample));
  }
  return out;
}

std::string describe(const std::vector<Finding>& findings)
{
  std::string out;
  for (const auto& f : findings) {
    out += "    " + std::to_string(f.line) + ":" + std::to_string(f.column) + " [" +
           std::string(to_string(f.severity)) + "] " + f.operation + " " + f.message + "\n";
  }
  return out.empty() ? "    (none)\n" : out;
}

bool has_operation(const std::vector<Finding>& findings, const std::string& operation)
{
  for (const auto& f : findings) {
    if (f.operation == operation) return true;
  }
  return false;
}

TEST(ScanSamples, AtLeastSixtyLabelledSamplesOfEveryKind)
{
  auto samples = load_samples();
  EXPECT_GE(samples.size(), 60u);
  int hostile = 0, evasive = 0, benign = 0, erlang = 0;
  for (const auto& sample : samples) {
    hostile += sample.label == "hostile";
    evasive += sample.label == "evasive";
    benign += sample.label == "benign";
    erlang += sample.file.ends_with(".erl");
  }
  EXPECT_GE(hostile, 15);
  EXPECT_GE(evasive, 20);
  EXPECT_GE(benign, 15);
  EXPECT_GE(erlang, 10);
}

TEST(ScanSamples, EverySampleGivesItsExpectedVerdict)
{
  auto samples = load_samples();
  ASSERT_FALSE(samples.empty());
  for (const auto& sample : samples) {
    SCOPED_TRACE(sample.file);
    auto source = util::read_file(kData / sample.file);
    ASSERT_TRUE(source) << source.error();
    Report report(sample.config);
    auto scanned = scan_source(sample.file, *source, report);
    ASSERT_TRUE(scanned) << scanned.error().reason;
    const auto& result = report.result();
    auto all = "  threats:\n" + describe(result.threats) + "  warnings:\n" + describe(result.warnings);
    if (sample.verdict == "threat") {
      EXPECT_FALSE(result.threats.empty()) << sample.file << " should be a threat\n" << all;
      for (const auto& op : sample.operations) {
        EXPECT_TRUE(has_operation(result.threats, op)) << sample.file << " lacks threat " << op << "\n" << all;
      }
    } else if (sample.verdict == "warning") {
      EXPECT_TRUE(result.threats.empty()) << sample.file << " should have no threat\n" << all;
      EXPECT_FALSE(result.warnings.empty()) << sample.file << " should warn\n" << all;
      for (const auto& op : sample.operations) {
        EXPECT_TRUE(has_operation(result.warnings, op)) << sample.file << " lacks warning " << op << "\n" << all;
      }
    } else {
      EXPECT_EQ(sample.verdict, "clean");
      EXPECT_TRUE(result.threats.empty() && result.warnings.empty())
        << sample.file << " should be clean\n" << all;
    }
  }
}

// The same samples in a sandbox tree, scanned as a compile scans it (scope
// compiled, the default): .ex under lib/ and .erl under src/, where compiled
// code lives, are caught as above; an .exs sample is a script that runs only
// in the jail, so it is reported as a warning that says so, and caught with
// scope all.
TEST(ScanSamples, HostileAndEvasiveSamplesAreCaughtInASandboxTree)
{
  auto samples = load_samples();
  ASSERT_FALSE(samples.empty());
  int checked = 0;
  for (const auto& sample : samples) {
    if (sample.verdict != "threat" || (sample.label != "hostile" && sample.label != "evasive")) continue;
    SCOPED_TRACE(sample.file);
    auto dir = util::TempDir::create("/tmp", "scan-sample-");
    ASSERT_TRUE(dir) << dir.error();
    auto source = util::read_file(kData / sample.file);
    ASSERT_TRUE(source) << source.error();
    bool script = sample.file.ends_with(".exs");
    auto placed = fs::path(script ? "" : sample.file.ends_with(".erl") ? "src" : "lib") / sample.file;
    fs::create_directories((dir->path() / placed).parent_path());
    ASSERT_TRUE(util::write_file_atomic(dir->path() / placed, *source));
    for (auto scope : {core::ScanScope::compiled, core::ScanScope::all}) {
      auto config = sample.config;
      config.scope = scope;
      auto result = scan_code_security(dir->path(), config);
      ASSERT_TRUE(result) << result.error().reason;
      auto all = "  threats:\n" + describe(result->threats) + "  warnings:\n" + describe(result->warnings);
      const auto& judged = script && scope == core::ScanScope::compiled ? result->warnings : result->threats;
      EXPECT_FALSE(judged.empty()) << placed << " in scope " << core::to_string(scope) << "\n" << all;
      for (const auto& op : sample.operations) {
        EXPECT_TRUE(has_operation(judged, op)) << placed << " lacks " << op << "\n" << all;
      }
      if (script && scope == core::ScanScope::compiled) {
        EXPECT_TRUE(result->threats.empty()) << all;
        for (const auto& warning : result->warnings) EXPECT_EQ(warning.runs_in, RunsIn::jail);
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

} // namespace
} // namespace sandbox::scan
