#include "core/options.h"

#include <algorithm>
#include <gtest/gtest.h>

namespace sandbox::core {

namespace {

using nlohmann::json;

CompileOptions parse_ok(const json& object)
{
  auto parsed = parse_compile_options(object);
  EXPECT_TRUE(parsed) << object.dump() << ": "
                      << (parsed ? "" : parsed.error().option + ": " + parsed.error().reason);
  return parsed ? *parsed : CompileOptions{};
}

// The option an invalid object is rejected for ("" when it is accepted).
std::string rejected_option(const json& object)
{
  auto parsed = parse_compile_options(object);
  if (parsed) {
    return "";
  }
  EXPECT_FALSE(parsed.error().reason.empty()) << object.dump();
  return parsed.error().option;
}

TEST(Options, DefaultsFollowTheSpecification)
{
  auto options = parse_ok(json::object());
  EXPECT_EQ(options.timeout_ms, 30'000);
  EXPECT_EQ(options.memory_limit, 256ull << 20);
  EXPECT_FALSE(options.temp_dir);
  EXPECT_TRUE(options.validate_beams);
  EXPECT_EQ(options.compiler, Backend::mix);
  EXPECT_TRUE(options.env.empty());
  EXPECT_FALSE(options.incremental);
  EXPECT_FALSE(options.force_recompile);
  EXPECT_TRUE(options.cache_enabled);
  EXPECT_FALSE(options.skip_cache);
  EXPECT_TRUE(options.dependency_analysis);
  EXPECT_DOUBLE_EQ(options.cpu_limit, 80.0);
  EXPECT_EQ(options.max_processes, 100);
  EXPECT_TRUE(options.security_scan);
  EXPECT_EQ(options.restricted_modules,
            (std::vector<std::string>{":os", ":file", ":code", ":erlang", "System", "File", "Code",
                                      "Port"}));
  EXPECT_TRUE(options.allowed_operations.empty());
  EXPECT_EQ(options.isolation, IsolationMode::jail);
  EXPECT_EQ(options.scan_scope, ScanScope::compiled);
  EXPECT_TRUE(options.given.empty());
  // null means "no options".
  EXPECT_TRUE(parse_compile_options(json(nullptr)));
}

TEST(Options, NotAnObject)
{
  EXPECT_EQ(rejected_option(json::array()), "options");
  EXPECT_EQ(rejected_option(json("timeout=5")), "options");
  EXPECT_EQ(rejected_option(json(5)), "options");
}

TEST(Options, EveryKnownNameIsAcceptedWithAValidValue)
{
  const json valid = {
      {"timeout", 5000},
      {"memory_limit", "512M"},
      {"temp_dir", "/tmp"},
      {"validate_beams", false},
      {"compiler", "elixirc"},
      {"env", {{"MIX_ENV", "prod"}}},
      {"source_files", {"lib/a.ex"}},
      {"incremental", true},
      {"force_recompile", true},
      {"cache_enabled", false},
      {"skip_cache", true},
      {"dependency_analysis", false},
      {"cpu_limit", 50.0},
      {"max_processes", 50},
      {"security_scan", false},
      {"restricted_modules", {":os", "System"}},
      {"allowed_operations", {"file_read"}},
      {"in_process", false},
      {"output_limit", "2M"},
      {"isolation", "process_group"},
      {"scan_scope", "all"},
      {"package_mirror", "/srv/hex-mirror"},
      {"toolchain", "/opt/elixir-1.18"},
      {"worker_reuse", "never"},
  };
  const auto& names = known_option_names();
  EXPECT_EQ(names.size(), valid.size());
  for (const auto& name : names) {
    ASSERT_TRUE(valid.contains(std::string(name))) << name << " has no test value";
    json one = {{std::string(name), valid[std::string(name)]}};
    auto parsed = parse_ok(one);
    EXPECT_EQ(parsed.given, std::vector<std::string>{std::string(name)});
  }
  auto all = parse_ok(valid);
  EXPECT_EQ(all.timeout_ms, 5000);
  EXPECT_EQ(all.memory_limit, 512ull << 20);
  EXPECT_EQ(all.temp_dir, std::filesystem::path("/tmp"));
  EXPECT_FALSE(all.validate_beams);
  EXPECT_EQ(all.compiler, Backend::elixirc);
  EXPECT_EQ(all.env, (std::map<std::string, std::string>{{"MIX_ENV", "prod"}}));
  EXPECT_EQ(all.source_files, std::vector<std::string>{"lib/a.ex"});
  EXPECT_TRUE(all.incremental);
  EXPECT_TRUE(all.force_recompile);
  EXPECT_FALSE(all.cache_enabled);
  EXPECT_TRUE(all.skip_cache);
  EXPECT_FALSE(all.dependency_analysis);
  EXPECT_DOUBLE_EQ(all.cpu_limit, 50.0);
  EXPECT_EQ(all.max_processes, 50);
  EXPECT_FALSE(all.security_scan);
  EXPECT_EQ(all.restricted_modules, (std::vector<std::string>{":os", "System"}));
  EXPECT_EQ(all.allowed_operations, std::vector<std::string>{"file_read"});
  EXPECT_EQ(all.output_limit, 2ull << 20);
  EXPECT_EQ(all.isolation, IsolationMode::process_group);
  EXPECT_EQ(all.given.size(), valid.size());
}

TEST(Options, UnknownOptionIsNamed)
{
  auto parsed = parse_compile_options({{"timeout", 5000}, {"timeuot", 5000}});
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().option, "timeuot");
  EXPECT_NE(parsed.error().reason.find("unknown"), std::string::npos);
}

TEST(Options, Timeout)
{
  EXPECT_EQ(parse_ok({{"timeout", 1}}).timeout_ms, 1);
  EXPECT_EQ(parse_ok({{"timeout", "2500"}}).timeout_ms, 2500);
  EXPECT_EQ(parse_ok({{"timeout", 3000.0}}).timeout_ms, 3000);
  EXPECT_EQ(parse_ok({{"timeout", 86'400'000}}).timeout_ms, 86'400'000);
  for (const json& bad : {json(0), json(-1), json(86'400'001), json("abc"), json(""), json("12ms"),
                          json(" 5"), json(1.5), json(true), json::array(), json(nullptr)}) {
    EXPECT_EQ(rejected_option({{"timeout", bad}}), "timeout") << bad;
  }
}

TEST(Options, MemoryAndOutputLimits)
{
  EXPECT_EQ(parse_ok({{"memory_limit", "256M"}}).memory_limit, 256ull << 20);
  EXPECT_EQ(parse_ok({{"memory_limit", "1G"}}).memory_limit, 1ull << 30);
  EXPECT_EQ(parse_ok({{"memory_limit", 536870912}}).memory_limit, 512ull << 20);
  EXPECT_EQ(parse_ok({{"memory_limit", "16M"}}).memory_limit, 16ull << 20);
  for (const json& bad : {json(5), json("5"), json("15M"), json("12Q"), json("2T"), json("2000G"),
                          json("-1"), json(-1), json(true), json("99999999999999999999G")}) {
    EXPECT_EQ(rejected_option({{"memory_limit", bad}}), "memory_limit") << bad;
  }
  EXPECT_EQ(parse_ok({{"output_limit", "4K"}}).output_limit, 4096U);
  EXPECT_EQ(parse_ok({{"output_limit", 1 << 20}}).output_limit, 1U << 20);
  EXPECT_EQ(rejected_option({{"output_limit", 4095}}), "output_limit");
  EXPECT_EQ(rejected_option({{"output_limit", "1Z"}}), "output_limit");
}

TEST(Options, ByteSizes)
{
  EXPECT_EQ(parse_byte_size("268435456"), 268435456U);
  EXPECT_EQ(parse_byte_size("256M"), 256ull << 20);
  EXPECT_EQ(parse_byte_size("256MB"), 256ull << 20);
  EXPECT_EQ(parse_byte_size("256MiB"), 256ull << 20);
  EXPECT_EQ(parse_byte_size("1G"), 1ull << 30);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("512K"), 512ull << 10);
  EXPECT_EQ(parse_byte_size("100MB"), 100ull << 20);
  EXPECT_EQ(parse_byte_size("7B"), 7U);
  EXPECT_EQ(parse_byte_size("0"), 0U);
  EXPECT_EQ(parse_byte_size("18446744073709551615"), UINT64_MAX);
  // 2^64 / 2^30 = 2^34 = 17179869184: one more overflows.
  EXPECT_EQ(parse_byte_size("17179869183G"), 17179869183ull << 30);
  for (const char* bad : {"", "M", "12Q", "1.5G", "-5", " 256M", "256 M", "256M ", "0x10",
                          "17179869184G", "18446744073709551616", "99999999999999999999G"}) {
    auto parsed = parse_byte_size(bad);
    EXPECT_FALSE(parsed) << '"' << bad << "\" parsed as " << (parsed ? *parsed : 0);
    if (!parsed) {
      EXPECT_FALSE(parsed.error().empty());
    }
  }
}

TEST(Options, CpuLimitAndMaxProcesses)
{
  EXPECT_DOUBLE_EQ(parse_ok({{"cpu_limit", 100}}).cpu_limit, 100.0);
  EXPECT_DOUBLE_EQ(parse_ok({{"cpu_limit", "12.5"}}).cpu_limit, 12.5);
  EXPECT_DOUBLE_EQ(parse_ok({{"cpu_limit", 0.5}}).cpu_limit, 0.5);
  for (const json& bad : {json(0), json(-10), json(150), json(100.01), json("lots"), json("nan"),
                          json("inf"), json(""), json(true), json::array()}) {
    EXPECT_EQ(rejected_option({{"cpu_limit", bad}}), "cpu_limit") << bad;
  }
  EXPECT_EQ(parse_ok({{"max_processes", 1}}).max_processes, 1);
  EXPECT_EQ(parse_ok({{"max_processes", "100000"}}).max_processes, 100'000);
  for (const json& bad : {json(0), json(-1), json(100'001), json("many"), json(2.5)}) {
    EXPECT_EQ(rejected_option({{"max_processes", bad}}), "max_processes") << bad;
  }
}

TEST(Options, CompilerAndIsolation)
{
  EXPECT_EQ(parse_ok({{"compiler", "mix"}}).compiler, Backend::mix);
  EXPECT_EQ(parse_ok({{"compiler", ":elixirc"}}).compiler, Backend::elixirc);
  EXPECT_EQ(parse_ok({{"compiler", "erlc"}}).compiler, Backend::erlc);
  EXPECT_EQ(parse_ok({{"compiler", "in_process"}}).compiler, Backend::in_process);
  EXPECT_EQ(parse_ok({{"in_process", true}}).compiler, Backend::in_process);
  EXPECT_EQ(parse_ok({{"in_process", false}}).compiler, Backend::mix);
  for (const json& bad : {json("foo"), json("MIX"), json(""), json(1)}) {
    EXPECT_EQ(rejected_option({{"compiler", bad}}), "compiler") << bad;
  }
  EXPECT_EQ(rejected_option({{"in_process", "yes"}}), "in_process");
  EXPECT_EQ(parse_ok({{"isolation", "jail"}}).isolation, IsolationMode::jail);
  EXPECT_EQ(rejected_option({{"isolation", "none"}}), "isolation");
  EXPECT_EQ(rejected_option({{"isolation", false}}), "isolation");
  EXPECT_EQ(CompileOptions{}.worker_reuse, WorkerReuse::confined);
  EXPECT_EQ(parse_ok({{"worker_reuse", "never"}}).worker_reuse, WorkerReuse::never);
  EXPECT_EQ(parse_ok({{"worker_reuse", "confined"}}).worker_reuse, WorkerReuse::confined);
  for (const json& bad : {json("always"), json(""), json(true), json(nullptr)}) {
    EXPECT_EQ(rejected_option({{"worker_reuse", bad}}), "worker_reuse") << bad;
  }
}

TEST(Options, BooleansMustBeBooleans)
{
  for (const char* name : {"validate_beams", "incremental", "force_recompile", "cache_enabled",
                           "skip_cache", "dependency_analysis", "security_scan"}) {
    EXPECT_EQ(rejected_option({{name, "true"}}), name);
    EXPECT_EQ(rejected_option({{name, 1}}), name);
    EXPECT_EQ(rejected_option({{name, nullptr}}), name);
  }
}

TEST(Options, TempDirAndSourceFiles)
{
  EXPECT_EQ(rejected_option({{"temp_dir", ""}}), "temp_dir");
  EXPECT_EQ(rejected_option({{"temp_dir", 5}}), "temp_dir");
  EXPECT_EQ(parse_ok({{"source_files", {"a.ex", "lib/b.ex"}}}).source_files,
            (std::vector<std::string>{"a.ex", "lib/b.ex"}));
  EXPECT_EQ(rejected_option({{"source_files", "lib/a.ex"}}), "source_files");
  EXPECT_EQ(rejected_option({{"source_files", {"a.ex", ""}}}), "source_files");
  EXPECT_EQ(rejected_option({{"source_files", {"a.ex", 5}}}), "source_files");
  EXPECT_EQ(rejected_option({{"source_files", {std::string("a\0b.ex", 6)}}}), "source_files");
}

TEST(Options, EnvNames)
{
  auto env = parse_ok({{"env", {{"FOO", "bar"}, {"_x1", ""}, {"MIX_ENV", "prod"}}}}).env;
  EXPECT_EQ(env,
            (std::map<std::string, std::string>{{"FOO", "bar"}, {"MIX_ENV", "prod"}, {"_x1", ""}}));
  for (const char* bad : {"", "1ABC", "A-B", "A B", "A=B", "Ä", "A.B"}) {
    EXPECT_EQ(rejected_option({{"env", {{bad, "v"}}}}), "env") << '"' << bad << '"';
  }
  EXPECT_EQ(rejected_option({{"env", {{std::string(257, 'A'), "v"}}}}), "env");
  EXPECT_EQ(rejected_option({{"env", {{"FOO", 1}}}}), "env");
  EXPECT_EQ(rejected_option({{"env", {{"FOO", std::string("a\0b", 3)}}}}), "env");
  EXPECT_EQ(rejected_option({{"env", {"FOO=bar"}}}), "env");
}

TEST(Options, ReservedEnvNamesCannotBeOverridden)
{
  for (const char* name : {"PATH", "HOME", "TMPDIR", "MIX_BUILD_PATH", "MIX_DEPS_PATH", "MIX_HOME",
                           "MIX_ARCHIVES", "LD_PRELOAD", "LD_LIBRARY_PATH", "ERL_LIBS", "ERL_FLAGS",
                           "ERL_AFLAGS", "ERL_ZFLAGS", "ELIXIR_ERL_OPTIONS", "SANDBOX_PACKAGES",
                           "HEX_OFFLINE"}) {
    EXPECT_TRUE(is_reserved_env_name(name)) << name;
    auto parsed = parse_compile_options({{"env", {{name, "/evil"}}}});
    ASSERT_FALSE(parsed) << name;
    EXPECT_EQ(parsed.error().option, "env");
    EXPECT_NE(parsed.error().reason.find(name), std::string::npos) << parsed.error().reason;
  }
  for (const char* name : {"MIX_ENV", "FOO", "path", "LANG_X"}) {
    EXPECT_FALSE(is_reserved_env_name(name)) << name;
  }
}

TEST(Options, RestrictedModulesAreNormalised)
{
  auto modules =
      parse_ok({{"restricted_modules",
                 {":os", "os", "Elixir.System", "System", ":file", "Elixir.File.Stream", "Port"}}})
          .restricted_modules;
  EXPECT_EQ(modules, (std::vector<std::string>{":os", ":os", "System", "System", ":file",
                                               "File.Stream", "Port"}));
  for (const json& bad : {json("Elixir."), json(":"), json("Bad Name"), json("a-b"),
                          json(":" + std::string(256, 'a')), json("")}) {
    EXPECT_EQ(rejected_option({{"restricted_modules", {bad}}}), "restricted_modules") << bad;
  }
  // An explicit list replaces the defaults, an empty one restricts nothing.
  EXPECT_TRUE(parse_ok({{"restricted_modules", json::array()}}).restricted_modules.empty());
}

TEST(Options, ErlangSpellingOfAnElixirModuleIsTheSameModule)
{
  // :"Elixir.System" is System; left as ":Elixir.System" a scanner comparing
  // normalised names would not match it.
  auto modules = parse_ok({{"restricted_modules", {":Elixir.System"}}}).restricted_modules;
  if (modules == std::vector<std::string>{":Elixir.System"}) {
    FAIL() << "regression: normalize_module keeps \":Elixir.System\" as an Erlang module "
                    "instead of \"System\"";
  }
  EXPECT_EQ(modules, std::vector<std::string>{"System"});
}

TEST(Options, ScanScope)
{
  EXPECT_EQ(parse_ok({{"scan_scope", "compiled"}}).scan_scope, ScanScope::compiled);
  EXPECT_EQ(parse_ok({{"scan_scope", "all"}}).scan_scope, ScanScope::all);
  EXPECT_EQ(parse_ok({{"scan_scope", ":all"}}).scan_scope, ScanScope::all); // an Elixir atom
  for (const json& bad : {json("ALL"), json("lib"), json(""), json(true), json(1)}) {
    EXPECT_EQ(rejected_option({{"scan_scope", bad}}), "scan_scope") << bad;
  }
  EXPECT_EQ(to_json(parse_ok({{"scan_scope", "all"}}))["scan_scope"], "all");
  EXPECT_EQ(parse_ok({{"allowed_operations", {"mix_task"}}}).allowed_operations,
            std::vector<std::string>{"mix_task"});
}

TEST(Options, AllowedOperations)
{
  EXPECT_EQ(parse_ok({{"allowed_operations", {":file_read", "network_access"}}}).allowed_operations,
            (std::vector<std::string>{"file_read", "network_access"}));
  EXPECT_EQ(rejected_option({{"allowed_operations", {"launch_missiles"}}}), "allowed_operations");
  EXPECT_EQ(rejected_option({{"allowed_operations", "file_read"}}), "allowed_operations");
}

TEST(Options, APackageMirrorIsAnAbsoluteDirectoryOrAnHttpUrl)
{
  EXPECT_EQ(parse_ok({{"package_mirror", "/srv/mirror"}}).package_mirror, "/srv/mirror");
  EXPECT_EQ(parse_ok({{"package_mirror", "https://hex.example.com/repo"}}).package_mirror,
            "https://hex.example.com/repo");
  EXPECT_EQ(parse_ok({{"package_mirror", "HTTP://127.0.0.1:8080"}}).package_mirror,
            "HTTP://127.0.0.1:8080");
  for (const json& bad : {json("mirror"), json("ftp://example.com/x"), json("file:///srv"),
                          json(""), json(3), json(std::string(5000, '/'))}) {
    auto parsed = parse_compile_options({{"package_mirror", bad}});
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().option, "package_mirror");
  }
  // Not set: absent from the options' JSON.
  EXPECT_FALSE(to_json(parse_ok(json::object())).contains("package_mirror"));
}

TEST(Options, AToolchainIsAnAbsolutePrefixOrARegisteredName)
{
  EXPECT_EQ(parse_ok({{"toolchain", "/opt/elixir-1.18"}}).toolchain, "/opt/elixir-1.18");
  EXPECT_EQ(parse_ok({{"toolchain", "elixir-1.18_otp25"}}).toolchain, "elixir-1.18_otp25");
  // "system" is the default, spelled out.
  EXPECT_EQ(parse_ok({{"toolchain", "system"}}).toolchain, "");
  EXPECT_EQ(to_json(parse_ok({{"toolchain", "/opt/x"}}))["toolchain"], "/opt/x");
  EXPECT_FALSE(to_json(parse_ok(json::object())).contains("toolchain"));
  for (const json& bad : {json("relative/dir"), json("../up"), json(""), json("-flag"), json("a b"),
                          json(3), json(std::string(5000, '/')), json(std::string(65, 'a'))}) {
    auto parsed = parse_compile_options({{"toolchain", bad}});
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().option, "toolchain");
  }
}

TEST(Options, ToJsonRoundTrips)
{
  json input = {{"timeout", 1234},
                {"memory_limit", "64M"},
                {"compiler", "erlc"},
                {"env", {{"A", "b"}}},
                {"cpu_limit", 25.5},
                {"max_processes", 7},
                {"restricted_modules", {"Elixir.Code"}},
                {"isolation", "process_group"}};
  auto options = parse_ok(input);
  auto out = to_json(options);
  EXPECT_EQ(out["timeout"], 1234);
  EXPECT_EQ(out["memory_limit"], 64ull << 20);
  EXPECT_EQ(out["compiler"], "erlc");
  EXPECT_EQ(out["env"], json({{"A", "b"}}));
  EXPECT_EQ(out["restricted_modules"], json::array({"Code"}));
  EXPECT_EQ(out["isolation"], "process_group");
  EXPECT_TRUE(out["temp_dir"].is_null());
  // What to_json prints (without its nulls, "not set") parses back to the
  // same options.
  out.erase("temp_dir");
  auto back = parse_ok(out);
  EXPECT_EQ(back.timeout_ms, options.timeout_ms);
  EXPECT_EQ(back.memory_limit, options.memory_limit);
  EXPECT_EQ(back.compiler, options.compiler);
  EXPECT_EQ(back.env, options.env);
  EXPECT_DOUBLE_EQ(back.cpu_limit, options.cpu_limit);
  EXPECT_EQ(back.max_processes, options.max_processes);
  EXPECT_EQ(back.restricted_modules, options.restricted_modules);
  EXPECT_EQ(back.isolation, options.isolation);
}

TEST(Options, BackendNames)
{
  EXPECT_EQ(to_string(Backend::mix), "mix");
  EXPECT_EQ(to_string(Backend::elixirc), "elixirc");
  EXPECT_EQ(to_string(Backend::erlc), "erlc");
  EXPECT_EQ(to_string(Backend::in_process), "in_process");
  EXPECT_EQ(to_string(IsolationMode::jail), "jail");
  EXPECT_EQ(to_string(IsolationMode::process_group), "process_group");
}

} // namespace

} // namespace sandbox::core
