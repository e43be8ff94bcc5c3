#include "cli/commands.h"
#include "core/options.h"

#include <gtest/gtest.h>

namespace sandbox::cli {

namespace {

using nlohmann::json;

// Parses `args` as the flags of a compile command.
json options_from(std::vector<std::string> args, std::string* error = nullptr)
{
  CLI::App app{"test"};
  CompileFlags flags;
  flags.add_to(app);
  std::vector<const char*> argv = {"test"};
  for (const auto& arg : args) {
    argv.push_back(arg.c_str());
  }
  app.parse(static_cast<int>(argv.size()), argv.data());
  std::string message;
  auto options = flags.to_options(message);
  if (error != nullptr) {
    *error = message;
  }
  return options ? *options : json();
}

TEST(CompileFlags, NoFlagsIsAnEmptyObject)
{
  EXPECT_EQ(options_from({}), json::object());
}

TEST(CompileFlags, EveryFlagMapsToItsSpecificationName)
{
  auto options = options_from({"--compiler",
                               "elixirc",
                               "--timeout",
                               "5000",
                               "--memory-limit",
                               "512M",
                               "--cpu-limit",
                               "50",
                               "--max-processes",
                               "20",
                               "--temp-dir",
                               "/tmp",
                               "--output-limit",
                               "2M",
                               "--isolation",
                               "process_group",
                               "--no-validate-beams",
                               "--incremental",
                               "--force-recompile",
                               "--no-cache",
                               "--skip-cache",
                               "--no-dependency-analysis",
                               "--no-security-scan",
                               "--env",
                               "A=1",
                               "--restricted-module",
                               ":os",
                               "--allowed-operation",
                               "file_read",
                               "--scan-scope",
                               "all",
                               "--source-file",
                               "lib/a.ex"});
  EXPECT_EQ(options["compiler"], "elixirc");
  EXPECT_EQ(options["timeout"], "5000");
  EXPECT_EQ(options["memory_limit"], "512M");
  EXPECT_EQ(options["cpu_limit"], "50");
  EXPECT_EQ(options["max_processes"], "20");
  EXPECT_EQ(options["temp_dir"], "/tmp");
  EXPECT_EQ(options["output_limit"], "2M");
  EXPECT_EQ(options["isolation"], "process_group");
  EXPECT_EQ(options["validate_beams"], false);
  EXPECT_EQ(options["incremental"], true);
  EXPECT_EQ(options["force_recompile"], true);
  EXPECT_EQ(options["cache_enabled"], false);
  EXPECT_EQ(options["skip_cache"], true);
  EXPECT_EQ(options["dependency_analysis"], false);
  EXPECT_EQ(options["security_scan"], false);
  EXPECT_EQ(options["env"], json({{"A", "1"}}));
  EXPECT_EQ(options["restricted_modules"], json::array({":os"}));
  EXPECT_EQ(options["allowed_operations"], json::array({"file_read"}));
  EXPECT_EQ(options["source_files"], json::array({"lib/a.ex"}));
  EXPECT_EQ(options["scan_scope"], "all");
  // Every key is one parse_compile_options knows, and the whole set parses.
  const auto& names = core::known_option_names();
  for (const auto& [key, value] : options.items()) {
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
  }
  auto parsed = core::parse_compile_options(options);
  ASSERT_TRUE(parsed) << parsed.error().option << ": " << parsed.error().reason;
  EXPECT_EQ(parsed->compiler, core::Backend::elixirc);
  EXPECT_EQ(parsed->timeout_ms, 5000);
  EXPECT_EQ(parsed->memory_limit, 512ull << 20);
  EXPECT_FALSE(parsed->cache_enabled);
  EXPECT_EQ(parsed->scan_scope, core::ScanScope::all);
}

TEST(CompileFlags, InProcessFlag)
{
  auto options = options_from({"--in-process"});
  EXPECT_EQ(options["in_process"], true);
  EXPECT_EQ(core::parse_compile_options(options)->compiler, core::Backend::in_process);
}

TEST(CompileFlags, RepeatableFlagsKeepOrder)
{
  auto options = options_from({"--source-file", "b.ex", "--source-file", "a.ex",
                               "--restricted-module", "System", "--restricted-module", ":os"});
  EXPECT_EQ(options["source_files"], json::array({"b.ex", "a.ex"}));
  EXPECT_EQ(options["restricted_modules"], json::array({"System", ":os"}));
}

TEST(CompileFlags, EnvSplitsAtTheFirstEquals)
{
  auto options = options_from({"--env", "URL=a=b", "--env", "EMPTY=", "--env", "X=1"});
  EXPECT_EQ(options["env"], json({{"URL", "a=b"}, {"EMPTY", ""}, {"X", "1"}}));
}

TEST(CompileFlags, MalformedEnvIsAnError)
{
  for (const char* bad : {"NOEQUALS", "=value", ""}) {
    std::string error;
    auto options = options_from({"--env", bad}, &error);
    EXPECT_TRUE(options.is_null()) << bad;
    EXPECT_NE(error.find("KEY=VALUE"), std::string::npos) << bad << ": " << error;
  }
}

TEST(CompileFlags, ReservedEnvIsRejectedByTheOptionParser)
{
  auto options = options_from({"--env", "PATH=/evil"});
  auto parsed = core::parse_compile_options(options);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().option, "env");
}

TEST(CompileFlags, UnknownFlagIsAParseError)
{
  EXPECT_THROW(options_from({"--no-such-flag"}), CLI::ParseError);
  EXPECT_THROW(options_from({"--timeout"}), CLI::ParseError);
}

} // namespace

} // namespace sandbox::cli
