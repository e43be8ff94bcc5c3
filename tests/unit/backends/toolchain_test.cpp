#include "backends/toolchain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace sandbox::backends {
namespace {

bool has(const std::vector<std::string>& env, const std::string& entry)
{
  return std::find(env.begin(), env.end(), entry) != env.end();
}

BackendRequest request_with(const core::CompileOptions& options)
{
  BackendRequest request;
  request.paths = {"/host/sandbox", "/host/tmp/job/work", "/sandbox", "/job"};
  request.options = &options;
  return request;
}

TEST(JobEnvironment, IsBuiltFromNothing)
{
  ::setenv("SANDBOX_TOOLCHAIN_TEST_SECRET", "leak", 1);
  core::CompileOptions options;
  auto env = job_environment(request_with(options), {});
  for (const auto& entry : env) {
    EXPECT_EQ(entry.find("SANDBOX_TOOLCHAIN_TEST_SECRET"), std::string::npos) << entry;
  }
  EXPECT_TRUE(has(env, "HOME=/job/home"));
  EXPECT_TRUE(has(env, "TMPDIR=/job/tmp"));
  EXPECT_TRUE(has(env, "LANG=C.UTF-8"));
  EXPECT_EQ(env.size(), 4u); // PATH, HOME, TMPDIR, LANG
  ::unsetenv("SANDBOX_TOOLCHAIN_TEST_SECRET");
}

TEST(JobEnvironment, AddsBackendVariablesThenTheEnvOption)
{
  core::CompileOptions options;
  options.env = {{"MIX_ENV", "prod"}, {"CUSTOM_VAR", "value"}};
  auto env = job_environment(request_with(options), {{"MIX_BUILD_PATH", "/job/build"}});
  EXPECT_TRUE(has(env, "MIX_BUILD_PATH=/job/build"));
  EXPECT_TRUE(has(env, "MIX_ENV=prod"));
  EXPECT_TRUE(has(env, "CUSTOM_VAR=value"));
}

TEST(JobEnvironment, EnvOptionCannotOverrideReservedVariables)
{
  core::CompileOptions options;
  options.env = {{"HOME", "/root"}, {"MIX_BUILD_PATH", "/sandbox"}};
  auto env = job_environment(request_with(options), {{"MIX_BUILD_PATH", "/job/build"}});
  EXPECT_TRUE(has(env, "HOME=/job/home"));
  EXPECT_TRUE(has(env, "MIX_BUILD_PATH=/job/build"));
  EXPECT_FALSE(has(env, "HOME=/root"));
}

TEST(JobSpec, BindsSandboxReadOnlyAndWorkWritable)
{
  core::CompileOptions options;
  options.timeout_ms = 1234;
  options.memory_limit = 64ull << 20;
  options.max_processes = 7;
  auto spec = job_spec(request_with(options), {"/usr/bin/elixirc"}, {});
  ASSERT_EQ(spec.binds.size(), 2u);
  EXPECT_EQ(spec.binds[0].host, "/host/sandbox");
  EXPECT_EQ(spec.binds[0].inside, "/sandbox");
  EXPECT_FALSE(spec.binds[0].writable);
  EXPECT_EQ(spec.binds[1].inside, "/job");
  EXPECT_TRUE(spec.binds[1].writable);
  EXPECT_EQ(spec.cwd, "/sandbox");
  EXPECT_EQ(spec.limits.wall_timeout_ms, 1234);
  EXPECT_EQ(spec.limits.memory_bytes, 64ull << 20);
  EXPECT_EQ(spec.limits.max_processes, 7);
}

TEST(FindSources, SkipsSymlinksAndSorts)
{
  auto root = std::filesystem::temp_directory_path() / ("find-sources-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "lib" / "nested");
  std::ofstream(root / "lib" / "b.ex") << "";
  std::ofstream(root / "lib" / "nested" / "a.ex") << "";
  std::ofstream(root / "lib" / "notes.txt") << "";
  std::filesystem::create_symlink("/etc/passwd", root / "lib" / "evil.ex");
  auto found = find_sources(root, "lib", ".ex", true);
  ASSERT_TRUE(found);
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0], "lib/b.ex");
  EXPECT_EQ((*found)[1], "lib/nested/a.ex");
  std::filesystem::remove_all(root);
}

TEST(AsArgument, NeverLooksLikeAFlag)
{
  EXPECT_EQ(as_argument("lib/a.ex"), "lib/a.ex");
  EXPECT_EQ(as_argument("-o.erl"), "./-o.erl");
}

} // namespace
} // namespace sandbox::backends

namespace sandbox::backends {
namespace {

TEST(VerdictError, MemoryLimitSaysWhatWasCompilingAndWhichOptionRaisesIt)
{
  jail::ProcessResult result;
  result.verdict = jail::Verdict::memory_limit;
  result.limit_reading = 256.0 * 1024 * 1024;
  jail::Limits limits;
  limits.memory_bytes = 256ull << 20;
  auto error = verdict_error(result, limits, "==> poison\nCompiling 4 files (.ex)\n", {},
                             "mix compile");
  const auto* limit = std::get_if<core::ResourceLimitExceeded>(&error);
  ASSERT_NE(limit, nullptr);
  EXPECT_EQ(limit->compiling, "mix compile (Compiling 4 files (.ex))");
  EXPECT_NE(limit->hint.find("256 MiB"), std::string::npos) << limit->hint;
  EXPECT_NE(limit->hint.find("--memory-limit 512M"), std::string::npos) << limit->hint;
  auto text = core::describe(error);
  EXPECT_NE(text.find("while compiling mix compile"), std::string::npos) << text;
}

TEST(VerdictError, ProcessLimitNamesMaxProcesses)
{
  jail::ProcessResult result;
  result.verdict = jail::Verdict::process_limit;
  result.limit_reading = 64;
  jail::Limits limits;
  limits.max_processes = 64;
  auto error = verdict_error(result, limits, "", {}, "elixirc");
  const auto* limit = std::get_if<core::ResourceLimitExceeded>(&error);
  ASSERT_NE(limit, nullptr);
  EXPECT_EQ(limit->compiling, "elixirc");
  EXPECT_NE(limit->hint.find("--max-processes 128"), std::string::npos) << limit->hint;
}

TEST(VerdictError, DescribeJobWithoutAJobNameUsesTheProgressLine)
{
  EXPECT_EQ(describe_job("", "Compiling 1 file (.ex)\nwarning\n"), "Compiling 1 file (.ex)");
  EXPECT_EQ(describe_job("erlc", "no progress\n"), "erlc");
}

} // namespace
} // namespace sandbox::backends
