// Compiling with a toolchain chosen per request (docs/toolchains.md): the
// system's Elixir 1.14 and Elixir 1.18.4 built from ../shared/toolchains by
// scripts/build-toolchain. Under 1.18 the corpora compile with every backend
// and run in a fresh 1.18 VM; 1.18-only code compiles there and not under
// 1.14; diagnostics keep their file and line; the jail shows that toolchain
// and no other; a switch of toolchain is never a cache hit; bad prefixes are
// one typed error from every command.

#include "service_support.h"
#include "support.h"

#include <fstream>

namespace sandbox::test {

namespace {

using nlohmann::json;

class Toolchains : public SandboxTest {
protected:
  void SetUp() override { SKIP_WITHOUT_ELIXIR_1_18(); }

  static std::string prefix() { return elixir_1_18()->string(); }

  // `code` in a fresh Elixir 1.18 VM with `ebins` on its code path.
  static RunResult run_elixir_118(const std::vector<fs::path>& ebins, const std::string& code)
  {
    std::vector<std::string> argv = {prefix() + "/bin/elixir"};
    for (const auto& ebin : ebins) {
      argv.push_back("-pa");
      argv.push_back(ebin.string());
    }
    argv.emplace_back("-e");
    argv.push_back(code);
    RunOptions options = with_timeout(60'000);
    const char* path = std::getenv("PATH");
    options.env["PATH"] = prefix() + "/bin:" + (path != nullptr ? path : "/usr/bin:/bin");
    return run_process(argv, options);
  }
};

struct CorpusCheck {
  const char* corpus;
  const char* code;     // run in a fresh 1.18 VM
  const char* expected; // what it prints
};

TEST_F(Toolchains, CorporaCompileWithEveryBackendAndBehaveInAFresh118VM)
{
  SKIP_WITHOUT_CORPORA();
  const CorpusCheck checks[] = {
    {"decimal", "IO.puts(Decimal.to_string(Decimal.add(\"1.1\", \"2.2\")))", "3.3"},
    {"mime", "IO.puts(MIME.type(\"json\"))", "application/json"},
    {"nimble_options",
     "IO.inspect(NimbleOptions.validate([a: 1], [a: [type: :integer]]))", "{:ok, [a: 1]}"},
  };
  for (const auto& check : checks) {
    auto path = copy_corpus(check.corpus);
    for (const char* backend : {"mix", "elixirc", "in_process"}) {
      SCOPED_TRACE(std::string(check.corpus) + " with " + backend);
      auto run = compile(path, {"--compiler", backend, "--toolchain", prefix()});
      ASSERT_EQ(run.exit_code, 0) << run.describe();
      auto result = run.json();
      expect_success_contract(result);
      EXPECT_EQ(result["toolchain"]["elixir"], "1.18.4") << result["toolchain"];
      EXPECT_EQ(result["toolchain"]["path"], prefix());
      EXPECT_FALSE(result["toolchain"]["otp"].get<std::string>().empty());
      auto behaved = run_elixir_118({result_ebin(result)}, check.code);
      EXPECT_EQ(behaved.exit_code, 0) << behaved.describe();
      EXPECT_NE(behaved.out.find(check.expected), std::string::npos) << behaved.describe();
    }
  }
}

TEST_F(Toolchains, ErlangSourcesCompileWithTheToolchainsErlc)
{
  auto path = make_sandbox("erl", {{"src/adder.erl", "-module(adder).\n-export([add/2]).\n"
                                                       "add(A, B) -> A + B.\n"}});
  auto run = compile(path, {"--compiler", "erlc", "--toolchain", prefix()});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.json()["toolchain"]["elixir"], "1.18.4");
  auto added = run_erl(result_ebin(run.json()), "io:format(\"~p\", [adder:add(2, 3)]), halt().");
  EXPECT_EQ(added.out, "5") << added.describe();
}

// Elixir 1.18's JSON module, called while the module compiles: the switch of
// toolchain is real, in the jail and in the warm worker alike.
TEST_F(Toolchains, CodeThatNeeds118CompilesUnderItAndFailsUnder114)
{
  const std::string code = "defmodule UsesJson do\n"
                           "  @encoded JSON.encode!(%{answer: 42})\n"
                           "  def encoded, do: @encoded\n"
                           "end\n";
  auto path = make_sandbox("json", {{"lib/uses_json.ex", code}});
  for (const char* backend : {"elixirc", "in_process"}) {
    SCOPED_TRACE(backend);
    auto modern = compile(path, {"--compiler", backend, "--toolchain", prefix()});
    ASSERT_EQ(modern.exit_code, 0) << modern.describe();
    auto encoded = run_elixir_118({result_ebin(modern.json())}, "IO.puts(UsesJson.encoded())");
    EXPECT_EQ(encoded.out, "{\"answer\":42}\n") << encoded.describe();

    auto old = compile(path, {"--compiler", backend});
    EXPECT_TRUE(is_error(old, "compilation_failed"));
    EXPECT_NE(old.json()["error"].dump().find("JSON"), std::string::npos) << old.describe();
  }
  auto out = scratch() / "string_out";
  auto string_run = sandbox({"compile-string", "--filename", "uses_json.ex", "--out", out.string(),
                             "--toolchain", prefix(), "--json"},
                            with_stdin(code));
  ASSERT_EQ(string_run.exit_code, 0) << string_run.describe();
  EXPECT_EQ(string_run.json()["toolchain"]["elixir"], "1.18.4");
  EXPECT_TRUE(fs::exists(out / "Elixir.UsesJson.beam"));
}

TEST_F(Toolchains, WarningsAndErrorsOf118KeepTheirFileAndLine)
{
  auto path = make_sandbox("diagnostics", {{"lib/warn.ex", "defmodule Warn do\n"
                                                           "  def f(x), do: 1\n"
                                                           "end\n"},
                                           {"lib/bad.ex", "defmodule Bad do\n"
                                                          "  def g, do: 1\n"
                                                          "  def h, do: undefined_call()\n"
                                                          "end\n"}});
  std::ofstream(path / "mix.exs") << "defmodule Diag.MixProject do\n  use Mix.Project\n"
                                     "  def project, do: [app: :diag, version: \"0.1.0\"]\nend\n";
  // With an error, the compile may stop before another file's warning is
  // printed: the error is checked here, the warnings on their own below.
  for (const char* backend : {"elixirc", "in_process", "mix"}) {
    SCOPED_TRACE(backend);
    auto failed = compile(path, {"--compiler", backend, "--toolchain", prefix()});
    ASSERT_TRUE(is_error(failed, "compilation_failed")) << failed.describe();
    bool error_seen = false;
    auto diagnostics = failed.json()["error"]["diagnostics"];
    for (const auto& d : diagnostics) {
      if (d["severity"] == "error" && d["file"] == "lib/bad.ex" && d["line"] == 3 && d["column"] == 14) {
        error_seen = d["message"].get<std::string>().find("undefined_call") != std::string::npos;
      }
    }
    EXPECT_TRUE(error_seen) << diagnostics.dump(2);
  }
  fs::remove(path / "lib" / "bad.ex");
  for (const char* backend : {"elixirc", "in_process", "mix"}) {
    SCOPED_TRACE(backend);
    auto warned = compile(path, {"--compiler", backend, "--toolchain", prefix()});
    ASSERT_EQ(warned.exit_code, 0) << warned.describe();
    auto warnings = warned.json()["warnings"];
    ASSERT_EQ(warnings.size(), 1u) << warnings;
    const auto& warning = warnings[0];
    EXPECT_EQ(warning["file"], "lib/warn.ex");
    EXPECT_EQ(warning["line"], 2);
    EXPECT_EQ(warning["column"], 9);
    EXPECT_NE(warning["message"].get<std::string>().find("variable \"x\" is unused"), std::string::npos);
  }
}

// What compile-time code sees of the host: this toolchain, and not the
// system's Elixir.
TEST_F(Toolchains, TheJailBindsThatToolchainAndNoOther)
{
  auto code = "defmodule Seen do\n"
              "  @seen %{system_elixir: File.exists?(\"/usr/lib/elixir\"),\n"
              "          system_link: File.exists?(\"/usr/bin/elixir\"),\n"
              "          own: File.dir?(\"" + prefix() + "/lib/elixir/ebin\"),\n"
              "          own_sources: File.exists?(\"" + prefix() + "/Makefile\"),\n"
              "          version: System.version()}\n"
              "  def seen, do: @seen\n"
              "end\n";
  auto path = make_sandbox("seen", {{"lib/seen.ex", code}});
  auto run = compile(path, {"--compiler", "elixirc", "--toolchain", prefix(), "--no-security-scan"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto seen = run_elixir_118({result_ebin(run.json())}, "IO.inspect(Enum.sort(Map.to_list(Seen.seen())), width: :infinity)");
  EXPECT_EQ(seen.out,
            "[own: true, own_sources: false, system_elixir: false, system_link: false, version: \"1.18.4\"]\n")
    << seen.describe();
}

TEST_F(Toolchains, ASwitchOfToolchainIsAFullCompileNeverAHit)
{
  auto path = make_sandbox("switch", {{"lib/one.ex", "defmodule One do\n  def one, do: 1\nend\n"}});
  auto incremental = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"incremental", path.string(), "--compiler", "elixirc", "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto run = sandbox(argv);
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    return run.json();
  };
  auto system = incremental({});
  EXPECT_EQ(system["compilation_strategy"], "full");
  auto system_version = system["toolchain"]["elixir"].get<std::string>();
  EXPECT_NE(system_version, "1.18.4");
  EXPECT_EQ(incremental({})["compilation_strategy"], "cache_hit");

  auto modern = incremental({"--toolchain", prefix()});
  EXPECT_EQ(modern["compilation_strategy"], "full");
  EXPECT_FALSE(modern["cache_hit"].get<bool>());
  EXPECT_EQ(modern["toolchain"]["elixir"], "1.18.4");
  auto again = incremental({"--toolchain", prefix()});
  EXPECT_EQ(again["compilation_strategy"], "cache_hit");
  EXPECT_EQ(again["toolchain"]["elixir"], "1.18.4");

  auto back = incremental({});
  EXPECT_EQ(back["compilation_strategy"], "full");
  EXPECT_EQ(back["toolchain"]["elixir"], system_version);
}

TEST_F(Toolchains, RegisteredNamesAreListedAndUsable)
{
  auto config = scratch() / "config";
  fs::create_directories(config);
  std::ofstream(config / "toolchains.conf") << "# toolchains of this host\nmodern = " << prefix() << "\n";
  RunOptions options = with_env({{"SANDBOX_CONFIG_DIR", config.string()}});
  auto listed = sandbox({"toolchains", "--json"}, options);
  ASSERT_EQ(listed.exit_code, 0) << listed.describe();
  auto list = listed.json()["toolchains"];
  ASSERT_EQ(list.size(), 2u) << list;
  EXPECT_EQ(list[0]["name"], "system");
  EXPECT_EQ(list[1]["name"], "modern");
  EXPECT_EQ(list[1]["elixir"], "1.18.4");
  EXPECT_FALSE(list[1]["otp"].get<std::string>().empty());

  auto doctor = sandbox({"doctor", "--json"}, options);
  EXPECT_EQ(doctor.json()["toolchains"], list) << doctor.describe();

  auto path = make_sandbox("named", {{"lib/a.ex", "defmodule Named do\nend\n"}});
  auto run = compile(path, {"--compiler", "elixirc", "--toolchain", "modern"}, options);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.json()["toolchain"]["name"], "modern");
  EXPECT_EQ(run.json()["toolchain"]["elixir"], "1.18.4");
  // The human report says it too.
  auto human = sandbox({"compile", path.string(), "--compiler", "elixirc", "--toolchain", "modern"}, options);
  EXPECT_EQ(human.exit_code, 0) << human.describe();
  EXPECT_NE(human.out.find("toolchain: Elixir 1.18.4 on Erlang/OTP "), std::string::npos) << human.out;

  std::ofstream(config / "toolchains.conf", std::ios::app) << "broken line\n";
  auto bad = sandbox({"toolchains", "--json"}, options);
  EXPECT_EQ(bad.exit_code, 1) << bad.describe();
  EXPECT_NE(bad.json().value("config_error", "").find("toolchains.conf:3"), std::string::npos)
    << bad.describe();
}

} // namespace

// Bad toolchains need no second toolchain: they are refused before anything runs.
class BadToolchains : public SandboxTest {};

TEST_F(BadToolchains, EachIsOneTypedErrorWithTheSameStatusFromEveryCommand)
{
  auto make_prefix = [&](const std::string& name, const std::string& script, const std::string& version) {
    auto dir = scratch() / name;
    fs::create_directories(dir / "bin");
    fs::create_directories(dir / "lib" / "elixir" / "ebin");
    for (const char* tool : {"elixir", "elixirc", "mix"}) {
      std::ofstream(dir / "bin" / tool) << script;
      fs::permissions(dir / "bin" / tool, fs::perms::owner_all);
    }
    std::ofstream(dir / "lib" / "elixir" / "ebin" / "elixir.app")
      << "{application,elixir,[{vsn,\"" << version << "\"}]}.\n";
    return dir;
  };
  fs::create_directories(scratch() / "empty");
  struct Case {
    std::string toolchain;
    std::string reason;
  };
  const Case cases[] = {
    {(scratch() / "missing").string(), "does not exist"},
    {(scratch() / "empty").string(), "bin/elixir is missing"},
    {make_prefix("broken", "#!/bin/sh\necho 'cannot boot' >&2\nexit 7\n", "1.18.0").string(),
     "does not start (exit status 7): cannot boot"},
    {make_prefix("too_new", "#!/bin/sh\necho 'ERROR! Unsupported Erlang/OTP version, expected "
                            "Erlang/OTP 99+' >&2\nexit 1\n",
                 "9.0.0")
       .string(),
     "Elixir 9.0.0 is too new for its Erlang/OTP"},
    {"no-such-name", "no toolchain named \"no-such-name\""},
  };
  auto path = make_sandbox("bad", {{"lib/a.ex", "defmodule A do\nend\n"}});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.toolchain);
    std::vector<RunResult> runs = {
      compile(path, {"--compiler", "elixirc", "--toolchain", c.toolchain}),
      compile(path, {"--compiler", "mix", "--toolchain", c.toolchain}),
      compile(path, {"--compiler", "in_process", "--toolchain", c.toolchain}),
      sandbox({"compile-file", (path / "lib" / "a.ex").string(), "--toolchain", c.toolchain, "--json"}),
      sandbox({"incremental", path.string(), "--toolchain", c.toolchain, "--json"}),
      sandbox({"compile-string", "--filename", "a.ex", "--out", (scratch() / "out").string(),
               "--toolchain", c.toolchain, "--json"},
              with_stdin("defmodule S do\nend\n")),
    };
    for (const auto& run : runs) {
      ASSERT_TRUE(is_error(run, "invalid_option", 2)) << run.describe();
      auto error = run.json()["error"];
      EXPECT_EQ(error["option"], "toolchain");
      EXPECT_NE(error["reason"].get<std::string>().find(c.reason), std::string::npos) << error.dump();
    }
  }
}

} // namespace sandbox::test

namespace sandbox::test {

namespace {

class ToolchainService : public ServiceTest {
protected:
  void SetUp() override
  {
    SKIP_WITHOUT_ELIXIR_1_18();
    ServiceTest::SetUp();
  }
};

// One service, two toolchains: each request gets a worker of its own
// toolchain from the warm pool, in either order.
TEST_F(ToolchainService, TheWarmPoolKeepsWorkersPerToolchain)
{
  start({"--workers", "2"});
  const std::string code = "defmodule PerToolchain do\n"
                           "  @encoded JSON.encode!([1, 2])\n"
                           "  def encoded, do: @encoded\n"
                           "end\n";
  auto request = [&](const std::string& toolchain) {
    json options = {{"timeout", 120'000}};
    if (!toolchain.empty()) {
      options["toolchain"] = toolchain;
    }
    Client client(socket_path());
    return client.call({{"op", "compile_string"}, {"code", code}, {"filename", "per_toolchain.ex"},
                        {"binaries", true}, {"options", options}});
  };
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    auto modern = request(elixir_1_18()->string());
    EXPECT_TRUE(modern.value("ok", false)) << modern.dump();
    EXPECT_EQ(modern["toolchain"]["elixir"], "1.18.4") << modern.dump();
    auto old = request("");
    EXPECT_FALSE(old.value("ok", true)) << old.dump();
    EXPECT_EQ(old["error"]["type"], "compilation_failed") << old.dump();
  }
}

} // namespace

} // namespace sandbox::test
