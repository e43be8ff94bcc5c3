// Each backend on each example: the real toolchain through build/sandbox, the
// JSON contract of DESIGN.md, and the produced BEAMs loaded in a fresh VM.

#include "support.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <thread>

namespace sandbox::test {

namespace {

using Compile = SandboxTest;

const nlohmann::json* find_warning(const nlohmann::json& warnings, const std::string& file,
                                   int line)
{
  for (const auto& w : warnings) {
    if (w.value("file", "") == file && w["line"].is_number_integer() && w["line"] == line) {
      return &w;
    }
  }
  return nullptr;
}

TEST_F(Compile, HelloMixWithMix)
{
  auto sandbox_path = copy_example("hello_mix");
  auto run = compile(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_EQ(beam_names(result),
            (std::vector<std::string>{"Elixir.HelloMix.Counter.beam", "Elixir.HelloMix.Macros.beam",
                                      "Elixir.HelloMix.beam"}));
  auto modules = result["modules"].get<std::vector<std::string>>();
  std::sort(modules.begin(), modules.end());
  EXPECT_EQ(modules, (std::vector<std::string>{"Elixir.HelloMix", "Elixir.HelloMix.Counter",
                                               "Elixir.HelloMix.Macros"}));
  ASSERT_TRUE(result["app_file"].is_string()) << result["app_file"];
  fs::path app = result["app_file"].get<std::string>();
  EXPECT_EQ(app.filename(), "hello_mix.app");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(app)));
  fs::path temp = result["temp_dir"].get<std::string>();
  EXPECT_EQ(app.lexically_relative(temp).begin()->string(), "ebin") << app;
  EXPECT_NE(read_text(app).find("{application,hello_mix"), std::string::npos) << read_text(app);
  EXPECT_EQ(result["compilation_strategy"], "full");
  EXPECT_EQ(result["incremental"], false);
  EXPECT_EQ(result["cache_hit"], false);
  EXPECT_EQ(result["warnings"].size(), 0U) << result["warnings"];
  EXPECT_GT(result["resource_usage"]["wall_time_ms"].get<std::int64_t>(), 0);

  // The BEAMs work in a fresh VM: the macro-generated function and the struct.
  auto ebin = beam_paths(result).front().parent_path();
  auto vm = run_elixir(
      ebin, "IO.puts(HelloMix.shout(\"ada\")); "
            "IO.puts(HelloMix.Counter.describe(HelloMix.Counter.bump(%HelloMix.Counter{})))");
  EXPECT_EQ(vm.exit_code, 0) << vm.describe();
  EXPECT_EQ(vm.out, "HELLO, ADA!\nHello, counter 1!\n");
  // And the .app file is one OTP accepts.
  auto app_vm =
      run_elixir(ebin, "{:ok, _} = Application.ensure_all_started(:hello_mix); "
                       "IO.inspect(Application.spec(:hello_mix, :modules) |> Enum.sort())");
  EXPECT_EQ(app_vm.exit_code, 0) << app_vm.describe();
  EXPECT_EQ(app_vm.out, "[HelloMix, HelloMix.Counter, HelloMix.Macros]\n");
}

TEST_F(Compile, PlainLibWithElixircReportsTheUnusedVariable)
{
  auto sandbox_path = copy_example("plain_lib");
  auto run = compile(sandbox_path, {"--compiler", "elixirc"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_TRUE(result["app_file"].is_null());
  EXPECT_EQ(beam_names(result),
            (std::vector<std::string>{"Elixir.Shapes.Format.beam", "Elixir.Shapes.beam"}));
  const auto* warning = find_warning(result["warnings"], "lib/shapes.ex", 11);
  ASSERT_NE(warning, nullptr) << result["warnings"].dump(2);
  EXPECT_NE((*warning)["message"].get<std::string>().find("\"y\" is unused"), std::string::npos)
      << *warning;
  EXPECT_EQ((*warning)["severity"], "warning");
  auto changed = result["changed_files"].get<std::vector<std::string>>();
  std::sort(changed.begin(), changed.end());
  EXPECT_EQ(changed, (std::vector<std::string>{"lib/shapes.ex", "lib/shapes_format.ex"}));

  auto vm = run_elixir(beam_paths(result).front().parent_path(),
                       "IO.puts(Shapes.total([{:square, 3}, {:rectangle, 2, 5}])); "
                       "IO.puts(Shapes.Format.describe({:square, 4}))");
  EXPECT_EQ(vm.exit_code, 0) << vm.describe();
  EXPECT_EQ(vm.out, "19\narea 16\n");
}

TEST_F(Compile, ErlangWithErlc)
{
  auto sandbox_path = copy_example("erlang");
  auto run = compile(sandbox_path, {"--compiler", "erlc"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"calc.beam", "calc_server.beam"}));
  auto modules = result["modules"].get<std::vector<std::string>>();
  std::sort(modules.begin(), modules.end());
  EXPECT_EQ(modules, (std::vector<std::string>{"calc", "calc_server"}));

  auto vm = run_erl(beam_paths(result).front().parent_path(),
                    "io:format(\"~p ~p ~s~n\", [calc:add(2, 3), calc_server:eval({mul, 6, 7}), "
                    "calc:version()]), halt().");
  EXPECT_EQ(vm.exit_code, 0) << vm.describe();
  EXPECT_EQ(vm.out, "5 42 1.0.0\n");
}

TEST_F(Compile, CompileErrorIsCompilationFailedWithADiagnostic)
{
  auto sandbox_path = copy_example("compile_error");
  auto run = compile(sandbox_path, {"--compiler", "elixirc"});
  ASSERT_TRUE(is_error(run, "compilation_failed", 1));
  auto error = run.json()["error"];
  EXPECT_EQ(error["exit_code"], 1);
  ASSERT_TRUE(error["output"].is_string());
  EXPECT_NE(error["output"].get<std::string>().find("missing_function"), std::string::npos);
  bool found = false;
  for (const auto& d : error.value("diagnostics", nlohmann::json::array())) {
    if (d.value("file", "") == "lib/broken.ex" && d["line"] == 5 && d["severity"] == "error") {
      found = true;
      EXPECT_NE(d["message"].get<std::string>().find("missing_function/1"), std::string::npos) << d;
    }
  }
  EXPECT_TRUE(found) << error.dump(2);
  // No job temp dir survives a failure.
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

TEST_F(Compile, HumanOutputAndReportOfACompile)
{
  auto sandbox_path = copy_example("erlang");
  auto human = sandbox({"compile", sandbox_path.string(), "--compiler", "erlc"});
  ASSERT_EQ(human.exit_code, 0) << human.describe();
  EXPECT_EQ(human.out.rfind("Compilation successful (", 0), 0U) << human.out;
  EXPECT_NE(human.out.find("calc.beam"), std::string::npos) << human.out;

  auto failed =
      sandbox({"compile", copy_example("compile_error").string(), "--compiler", "elixirc"});
  EXPECT_EQ(failed.exit_code, 1) << failed.describe();
  EXPECT_EQ(failed.out.rfind("Compilation failed: Exit code 1", 0), 0U) << failed.out;
  EXPECT_NE(failed.out.find("lib/broken.ex:5"), std::string::npos) << failed.out;
}

TEST_F(Compile, MixProjectWithExtraElixircPaths)
{
  // A Mix project whose code lives in several directories, with a warning.
  auto sandbox_path = make_sandbox(
      "multi", {{"mix.exs", "defmodule Multi.MixProject do\n"
                            "  use Mix.Project\n"
                            "  def project, do: [app: :multi, version: \"0.1.0\",\n"
                            "    elixirc_paths: [\"lib\", \"extra\"]]\n"
                            "end\n"},
                {"lib/a.ex", "defmodule Multi.A do\n  def a, do: Multi.B.b() + 1\nend\n"},
                {"extra/b.ex", "defmodule Multi.B do\n"
                               "  def b do\n"
                               "    unused = 1\n"
                               "    41\n"
                               "  end\nend\n"}});
  auto run = compile(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_EQ(beam_names(result),
            (std::vector<std::string>{"Elixir.Multi.A.beam", "Elixir.Multi.B.beam"}));
  ASSERT_TRUE(result["app_file"].is_string());
  EXPECT_EQ(fs::path(result["app_file"].get<std::string>()).filename(), "multi.app");
  EXPECT_NE(find_warning(result["warnings"], "extra/b.ex", 3), nullptr)
      << result["warnings"].dump(2);
  auto vm = run_elixir(beam_paths(result).front().parent_path(), "IO.puts(Multi.A.a())");
  EXPECT_EQ(vm.out, "42\n") << vm.describe();
}

TEST_F(Compile, MixCompileErrorHasADiagnostic)
{
  auto sandbox_path = copy_example("hello_mix");
  std::ofstream(sandbox_path / "lib" / "bad.ex") << "defmodule HelloMix.Bad do\n"
                                                    "  def x, do: nope()\n"
                                                    "end\n";
  auto run = compile(sandbox_path);
  ASSERT_TRUE(is_error(run, "compilation_failed", 1));
  auto error = run.json()["error"];
  EXPECT_EQ(error["exit_code"], 1);
  ASSERT_FALSE(error["diagnostics"].empty()) << error.dump(2);
  const auto& d = error["diagnostics"][0];
  EXPECT_EQ(d["file"], "lib/bad.ex") << d;
  EXPECT_EQ(d["line"], 2) << d;
  EXPECT_EQ(d["severity"], "error") << d;
  EXPECT_NE(d["message"].get<std::string>().find("nope/0"), std::string::npos) << d;
}

TEST_F(Compile, ErlcErrorsAndWarningsHaveFileLineAndColumn)
{
  auto warn = make_sandbox("erl_warn", {{"src/warn.erl", "-module(warn).\n-export([f/1]).\n"
                                                         "f(X) -> Y = 1, X.\n"}});
  auto ok = compile(warn, {"--compiler", "erlc"});
  ASSERT_EQ(ok.exit_code, 0) << ok.describe();
  auto warnings = ok.json()["warnings"];
  ASSERT_EQ(warnings.size(), 1U) << warnings;
  EXPECT_EQ(warnings[0]["file"], "src/warn.erl");
  EXPECT_EQ(warnings[0]["line"], 3);
  EXPECT_EQ(warnings[0]["column"], 9);
  EXPECT_NE(warnings[0]["message"].get<std::string>().find("'Y' is unused"), std::string::npos);

  auto bad = make_sandbox("erl_bad", {{"src/bad.erl", "-module(bad).\n-export([f/0]).\n"
                                                      "f() -> undefined_thing().\n"}});
  auto failed = compile(bad, {"--compiler", "erlc"});
  ASSERT_TRUE(is_error(failed, "compilation_failed", 1));
  auto diagnostics = failed.json()["error"]["diagnostics"];
  ASSERT_FALSE(diagnostics.empty());
  EXPECT_EQ(diagnostics[0]["file"], "src/bad.erl");
  EXPECT_EQ(diagnostics[0]["line"], 3);
  EXPECT_EQ(diagnostics[0]["severity"], "error");
}

TEST_F(Compile, OddFileAndDirectoryNames)
{
  // A source named like a flag and a sandbox path with spaces and non-ASCII.
  auto sandbox_path = make_sandbox("my sandbox \xc3\xbc", {{"lib/-dash.ex", "defmodule Dash do\n"
                                                                            "  def x, do: 1\n"
                                                                            "end\n"}});
  auto run = compile(sandbox_path, {"--compiler", "elixirc"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Dash.beam"}));
  EXPECT_EQ(result["changed_files"], nlohmann::json::array({"lib/-dash.ex"}));
}

TEST_F(Compile, ConcurrentCompilesOfOneSandbox)
{
  // Two engines start at once with a fresh state directory: both create or
  // read the same key and each gets its own temp dir.
  auto sandbox_path = copy_example("erlang");
  RunResult first;
  RunResult second;
  std::thread a([&] { first = compile(sandbox_path, {"--compiler", "erlc"}); });
  std::thread b([&] { second = compile(sandbox_path, {"--compiler", "erlc"}); });
  a.join();
  b.join();
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  auto first_temp = first.json()["temp_dir"].get<std::string>();
  auto second_temp = second.json()["temp_dir"].get<std::string>();
  EXPECT_NE(first_temp, second_temp);
  EXPECT_EQ(beam_names(first.json()), beam_names(second.json()));
  EXPECT_EQ(sandbox({"cleanup", first_temp}).exit_code, 0);
  EXPECT_EQ(sandbox({"cleanup", second_temp}).exit_code, 0);
}

} // namespace

} // namespace sandbox::test
