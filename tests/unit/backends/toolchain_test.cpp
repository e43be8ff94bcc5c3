#include "backends/toolchain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace sandbox::backends {
namespace {

namespace fs = std::filesystem;

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

// SANDBOX_CONFIG_DIR for the life of one test.
class ConfigDir {
public:
  explicit ConfigDir(const std::string& content)
  {
    char pattern[] = "/tmp/sandbox-toolchains-XXXXXX";
    m_dir = ::mkdtemp(pattern);
    std::ofstream(m_dir / "toolchains.conf") << content;
    ::setenv("SANDBOX_CONFIG_DIR", m_dir.c_str(), 1);
  }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;
  ~ConfigDir()
  {
    ::unsetenv("SANDBOX_CONFIG_DIR");
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

private:
  fs::path m_dir;
};

TEST(ToolchainRegistry, ReadsNamesAndPrefixesWithComments)
{
  ConfigDir config("# toolchains\n\nmodern = /opt/elixir-1.18  # current\n  old=/opt/elixir-1.15\n");
  auto registered = registered_toolchains();
  ASSERT_TRUE(registered) << registered.error();
  ASSERT_EQ(registered->size(), 2u);
  EXPECT_EQ((*registered)[0].name, "modern");
  EXPECT_EQ((*registered)[0].directory, "/opt/elixir-1.18");
  EXPECT_EQ((*registered)[1].name, "old");
  EXPECT_EQ((*registered)[1].directory, "/opt/elixir-1.15");
}

TEST(ToolchainRegistry, AMalformedLineIsNamedWithItsNumber)
{
  for (const char* bad : {"modern /opt/x\n", "system = /usr\n", "x = relative\n", "-x = /opt\n", "= /opt\n"}) {
    ConfigDir config(std::string("ok = /opt/ok\n") + bad);
    auto registered = registered_toolchains();
    ASSERT_FALSE(registered) << bad;
    EXPECT_NE(registered.error().find("toolchains.conf:2"), std::string::npos) << registered.error();
  }
}

TEST(ToolchainRegistry, AnUnknownNameListsTheKnownOnes)
{
  ConfigDir config("modern = /opt/elixir-1.18\n");
  auto resolved = resolve_toolchain("ancient");
  ASSERT_FALSE(resolved);
  const auto* invalid = std::get_if<core::InvalidOption>(&resolved.error());
  ASSERT_NE(invalid, nullptr);
  EXPECT_EQ(invalid->option, "toolchain");
  EXPECT_NE(invalid->reason.find("known: system, modern"), std::string::npos) << invalid->reason;
}

TEST(ToolchainRegistry, TheSystemToolchainIsDescribed)
{
  auto system = resolve_toolchain("");
  ASSERT_TRUE(system);
  EXPECT_TRUE((*system)->system);
  EXPECT_FALSE((*system)->elixir_version.empty());
  EXPECT_FALSE((*system)->otp_version.empty());
  EXPECT_NE((*system)->identity.find((*system)->elixir_version), std::string::npos);
  EXPECT_TRUE((*system)->elixir_at_least(1, 0));
  EXPECT_FALSE((*system)->elixir_at_least(99, 0));
  EXPECT_EQ((*system)->to_json()["name"], "system");
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
