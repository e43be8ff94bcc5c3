// The other subcommands: validate, report, compile-file.

#include "support.h"

#include <fstream>

namespace sandbox::test {

namespace {

class Commands : public SandboxTest {
protected:
  // BEAMs made by a real compile of the Erlang example.
  std::vector<fs::path> erlang_beams()
  {
    auto run = compile(copy_example("erlang"), {"--compiler", "erlc"});
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    return beam_paths(run.json());
  }

  fs::path write_bytes(const std::string& name, const std::string& bytes) const
  {
    auto path = scratch() / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
};

TEST_F(Commands, ValidateGoodBeams)
{
  auto beams = erlang_beams();
  ASSERT_EQ(beams.size(), 2U);
  std::vector<std::string> args = {"validate"};
  for (const auto& beam : beams) {
    args.push_back(beam.string());
  }
  auto human = sandbox(args);
  EXPECT_EQ(human.exit_code, 0) << human.describe();
  EXPECT_NE(human.out.find("(calc)"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("(calc_server)"), std::string::npos) << human.out;

  args.emplace_back("--json");
  auto run = sandbox(args);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto json = run.json();
  EXPECT_EQ(json["ok"], true);
  ASSERT_EQ(json["files"].size(), 2U) << json;
  EXPECT_EQ(json["files"][0]["module"], "calc");
  EXPECT_EQ(json["files"][1]["module"], "calc_server");
  EXPECT_EQ(json["files"][0]["ok"], true);
  EXPECT_FALSE(json.contains("error"));
}

TEST_F(Commands, ValidateCorruptBeams)
{
  auto beams = erlang_beams();
  ASSERT_FALSE(beams.empty());
  auto good = read_text(beams.front());
  ASSERT_GT(good.size(), 64U);
  auto truncated = write_bytes("truncated.beam", good.substr(0, good.size() / 2));
  auto garbage = write_bytes("garbage.beam", std::string(600, '\x5a') + "FOR1 BEAM");
  auto empty = write_bytes("empty.beam", "");
  auto flipped_text = good;
  flipped_text[4] = static_cast<char>(0x7f); // the FOR1 length
  auto bad_length = write_bytes("bad_length.beam", flipped_text);

  for (const auto& bad : {truncated, garbage, empty, bad_length}) {
    auto human = sandbox({"validate", bad.string()});
    EXPECT_EQ(human.exit_code, 1) << bad << "\n" << human.describe();
    EXPECT_NE(human.out.find("INVALID"), std::string::npos) << human.out;

    auto run = sandbox({"validate", beams.front().string(), bad.string(), "--json"});
    ASSERT_TRUE(is_error(run, "beam_validation_failed", 1)) << bad;
    auto json = run.json();
    EXPECT_EQ(json["error"]["file"], bad.string());
    EXPECT_TRUE(json["error"]["reason"].is_string() &&
                !json["error"]["reason"].get<std::string>().empty());
    ASSERT_EQ(json["files"].size(), 2U);
    EXPECT_EQ(json["files"][0]["ok"], true);
    EXPECT_EQ(json["files"][1]["ok"], false);
  }
  // A valid BEAM under another module's name.
  auto renamed = write_bytes("other.beam", good);
  auto mismatch = sandbox({"validate", renamed.string(), "--json"});
  ASSERT_TRUE(is_error(mismatch, "beam_validation_failed", 1));
  EXPECT_NE(mismatch.json()["error"]["reason"].get<std::string>().find("calc"), std::string::npos);
  auto missing = sandbox({"validate", (scratch() / "missing.beam").string(), "--json"});
  EXPECT_TRUE(is_error(missing, "beam_validation_failed", 1));
  EXPECT_EQ(sandbox({"validate"}).exit_code, 2);
}

TEST_F(Commands, ReportOfASuccess)
{
  auto compiled = compile(copy_example("erlang"), {"--compiler", "erlc"});
  ASSERT_EQ(compiled.exit_code, 0) << compiled.describe();
  auto time = compiled.json()["compilation_time"].get<std::int64_t>();

  auto human = sandbox({"report"}, with_stdin(compiled.out));
  EXPECT_EQ(human.exit_code, 0) << human.describe();
  EXPECT_EQ(human.out.rfind("Compilation successful (" + std::to_string(time) + "ms)\n", 0), 0U)
      << human.out;

  auto run = sandbox({"report", "--json"}, with_stdin(compiled.out));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto report = run.json();
  EXPECT_EQ(report["status"], "success");
  EXPECT_EQ(report["summary"], "Compilation successful (" + std::to_string(time) + "ms)");
  EXPECT_EQ(report["metrics"]["compilation_time"], time);
  EXPECT_EQ(report["metrics"]["beam_files_count"], 2);
  EXPECT_TRUE(report["metrics"]["output_size"].is_number_integer());
}

TEST_F(Commands, ReportOfAFailure)
{
  auto compiled = compile(copy_example("compile_error"), {"--compiler", "elixirc"});
  ASSERT_EQ(compiled.exit_code, 1) << compiled.describe();
  auto human = sandbox({"report"}, with_stdin(compiled.out));
  EXPECT_EQ(human.exit_code, 1) << human.describe();
  EXPECT_EQ(human.out.rfind("Compilation failed: Exit code 1\n", 0), 0U) << human.out;

  auto run = sandbox({"report", "--json"}, with_stdin(compiled.out));
  EXPECT_EQ(run.exit_code, 1) << run.describe();
  auto report = run.json();
  EXPECT_EQ(report["status"], "failure");
  EXPECT_EQ(report["summary"], "Compilation failed: Exit code 1");
  EXPECT_NE(report["details"].get<std::string>().find("lib/broken.ex:5"), std::string::npos)
      << report;
  EXPECT_EQ(report["metrics"]["beam_files_count"], 0);
}

TEST_F(Commands, ReportRejectsWhatIsNotAResult)
{
  for (const std::string input :
       {"this is not json", "", "{\"ok\": \"yes\"}", "[1, 2]", "{\"ok\": false}"}) {
    auto run = sandbox({"report"}, with_stdin(input));
    EXPECT_EQ(run.exit_code, 2) << "input: " << input << "\n" << run.describe();
    EXPECT_FALSE(run.err.empty()) << input;
  }
}

TEST_F(Commands, CompileFileElixir)
{
  auto dir = make_sandbox("single", {{"greeter.ex", "defmodule Greeter do\n"
                                                    "  def hi(name), do: \"hi \" <> name\n"
                                                    "end\n"},
                                     {"other.ex", "defmodule Other do\nend\n"}});
  auto run = sandbox({"compile-file", (dir / "greeter.ex").string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Greeter.beam"}));
  EXPECT_EQ(result["changed_files"], nlohmann::json::array({"greeter.ex"}));
  auto vm = run_elixir(beam_paths(result).front().parent_path(), "IO.puts(Greeter.hi(\"bo\"))");
  EXPECT_EQ(vm.out, "hi bo\n") << vm.describe();
}

TEST_F(Commands, CompileFileErlang)
{
  auto dir = make_sandbox("single_erl", {{"sq.erl", "-module(sq).\n-export([sq/1]).\n"
                                                    "sq(X) -> X * X.\n"}});
  auto run = sandbox({"compile-file", (dir / "sq.erl").string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"sq.beam"}));
  auto vm = run_erl(beam_paths(result).front().parent_path(),
                    "io:format(\"~p~n\", [sq:sq(12)]), halt().");
  EXPECT_EQ(vm.out, "144\n") << vm.describe();
}

TEST_F(Commands, CompileFileRefusesOtherFiles)
{
  auto dir = make_sandbox("text", {{"x.txt", "defmodule X do\nend\n"}});
  auto run = sandbox({"compile-file", (dir / "x.txt").string(), "--json"});
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_TRUE(is_error(sandbox({"compile-file", (dir / "missing.ex").string(), "--json"}),
                       "invalid_sandbox_path", 1));
  EXPECT_TRUE(
      is_error(sandbox({"compile-file", dir.string(), "--json"}), "invalid_sandbox_path", 1));
  // The backend follows from the extension.
  std::ofstream(dir / "y.ex") << "defmodule Y do\nend\n";
  EXPECT_TRUE(
      is_error(sandbox({"compile-file", (dir / "y.ex").string(), "--compiler", "erlc", "--json"}),
               "invalid_option", 2));
}

} // namespace

} // namespace sandbox::test
