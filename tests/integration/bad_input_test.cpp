// Bad input: each gives its typed error and exit status. Paths are resolved,
// never substring-matched, so odd-looking but valid paths compile.

#include "support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace sandbox::test {

namespace {

using BadInput = SandboxTest;

TEST_F(BadInput, NonexistentPath)
{
  auto missing = scratch() / "no-such-sandbox";
  auto run = compile(missing);
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  auto error = run.json()["error"];
  EXPECT_EQ(error["path"], missing.string());
  EXPECT_TRUE(error["reason"].is_string() && !error["reason"].get<std::string>().empty());
}

TEST_F(BadInput, FileInsteadOfDirectory)
{
  auto file = copy_example("plain_lib") / "lib" / "shapes.ex";
  auto run = compile(file, {"--compiler", "elixirc"});
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_NE(run.json()["error"]["reason"].get<std::string>().find("not a directory"),
            std::string::npos);
}

// The warning's file is relative to the sandbox, however the path was spelled.
void expect_plain_lib_compiled(const RunResult& run)
{
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  EXPECT_EQ(beam_names(result),
            (std::vector<std::string>{"Elixir.Shapes.Format.beam", "Elixir.Shapes.beam"}));
  bool found = false;
  for (const auto& w : result["warnings"]) {
    found = found || (w["file"] == "lib/shapes.ex" && w["line"] == 11);
  }
  EXPECT_TRUE(found) << result["warnings"].dump(2);
}

TEST_F(BadInput, PathWithDotDotIsResolvedAndCompiles)
{
  auto sandbox_path = copy_example("plain_lib");
  fs::create_directories(scratch() / "elsewhere");
  auto dotted = scratch() / "elsewhere" / ".." / "src" / "plain_lib";
  expect_plain_lib_compiled(compile(dotted, {"--compiler", "elixirc"}));
}

TEST_F(BadInput, SymlinkToADirectoryIsResolvedAndCompiles)
{
  auto sandbox_path = copy_example("plain_lib");
  auto link = scratch() / "link-to-sandbox";
  fs::create_directory_symlink(sandbox_path, link);
  expect_plain_lib_compiled(compile(link, {"--compiler", "elixirc"}));
}

TEST_F(BadInput, PathsThatOnlyLookSuspiciousCompile)
{
  // "/tmp/binx..." starts with "/tmp/bin" and "etc" is a system directory's
  // name: neither matters once paths are compared by components.
  TempTree binx("binx", "/tmp");
  ASSERT_EQ(binx.path().string().rfind("/tmp/binx", 0), 0U);
  auto in_binx = binx.copy_in(example_dir("plain_lib"), "plain_lib");
  expect_plain_lib_compiled(compile(in_binx, {"--compiler", "elixirc"}));

  auto in_etc = scratch() / "etc" / "sandbox" / "bin";
  fs::create_directories(in_etc.parent_path());
  fs::copy(example_dir("plain_lib"), in_etc, fs::copy_options::recursive);
  expect_plain_lib_compiled(compile(in_etc, {"--compiler", "elixirc"}));
}

TEST_F(BadInput, SandboxWithPrivateModesCompiles)
{
  // A sandbox made with mkdtemp (0700) and a umask of 077: the engine's user
  // can read it, so the engine can compile it.
  auto sandbox_path = copy_example("plain_lib");
  for (const auto& path : {sandbox_path, sandbox_path / "lib"}) {
    fs::permissions(path, fs::perms::owner_all);
  }
  for (const auto& entry : fs::directory_iterator(sandbox_path / "lib")) {
    fs::permissions(entry.path(), fs::perms::owner_read | fs::perms::owner_write);
  }
  auto run = compile(sandbox_path, {"--compiler", "elixirc"});
  if (run.exit_code == 1 && run.json()["error"].value("type", "") == "jail_setup_failed") {
    FAIL() << "regression: a sandbox with mode 0700 (files 0600) fails in the jail with "
                 << run.json()["error"].dump();
  }
  expect_plain_lib_compiled(run);
}

TEST_F(BadInput, SourceFileOutsideTheSandbox)
{
  auto sandbox_path = copy_example("plain_lib");
  std::ofstream(sandbox_path.parent_path() / "outside.ex")
      << "defmodule Outside do\n  def x, do: 1\nend\n";
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--source-file", "../outside.ex"});
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_EQ(run.json()["error"]["path"], "../outside.ex");

  auto absolute = compile(sandbox_path, {"--compiler", "elixirc", "--source-file",
                                         (sandbox_path.parent_path() / "outside.ex").string()});
  EXPECT_TRUE(is_error(absolute, "invalid_sandbox_path", 1));
}

TEST_F(BadInput, SourceFileSymlinkPointingOutside)
{
  auto sandbox_path = copy_example("plain_lib");
  auto outside = scratch() / "outside.ex";
  std::ofstream(outside) << "defmodule Outside do\n  def x, do: 1\nend\n";
  fs::create_symlink(outside, sandbox_path / "lib" / "inside.ex");
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--source-file", "lib/inside.ex"});
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_EQ(run.json()["error"]["path"], "lib/inside.ex");
}

TEST_F(BadInput, SourceFilesSelectWhatIsCompiled)
{
  auto sandbox_path = copy_example("plain_lib");
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--source-file", "lib/shapes.ex"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Shapes.beam"}));
  EXPECT_EQ(result["changed_files"], nlohmann::json::array({"lib/shapes.ex"}));
}

TEST_F(BadInput, UnknownFlagIsAUsageError)
{
  auto run = sandbox({"compile", example_dir("plain_lib").string(), "--no-such-flag"});
  EXPECT_EQ(run.exit_code, 2) << run.describe();
  EXPECT_NE(run.err.find("--no-such-flag"), std::string::npos) << run.err;
  auto no_command = sandbox({});
  EXPECT_EQ(no_command.exit_code, 2) << no_command.describe();
  auto unknown_command = sandbox({"frobnicate"});
  EXPECT_EQ(unknown_command.exit_code, 2) << unknown_command.describe();
}

struct BadOption {
  std::vector<std::string> flags;
  std::string option; // the specification's name, as the error object carries it
};

void PrintTo(const BadOption& bad, std::ostream* out)
{
  for (const auto& flag : bad.flags) {
    *out << flag << " ";
  }
}

class BadOptionValue : public SandboxTest, public ::testing::WithParamInterface<BadOption> {};

TEST_P(BadOptionValue, IsAUsageErrorNamingTheOption)
{
  const auto& bad = GetParam();
  auto sandbox_path = example_dir("plain_lib");
  std::vector<std::string> args = {"compile", sandbox_path.string()};
  args.insert(args.end(), bad.flags.begin(), bad.flags.end());
  auto human = sandbox(args);
  EXPECT_EQ(human.exit_code, 2) << human.describe();
  EXPECT_NE(human.err.find(bad.flags.front()), std::string::npos) << human.err;

  args.emplace_back("--json");
  auto run = sandbox(args);
  ASSERT_TRUE(is_error(run, "invalid_option", 2));
  auto error = run.json()["error"];
  EXPECT_EQ(error["option"], bad.option);
  EXPECT_TRUE(error["reason"].is_string() && !error["reason"].get<std::string>().empty());
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

INSTANTIATE_TEST_SUITE_P(
    Options, BadOptionValue,
    ::testing::Values(BadOption{{"--timeout", "abc"}, "timeout"},
                      BadOption{{"--timeout", "0"}, "timeout"},
                      BadOption{{"--timeout", "-5"}, "timeout"},
                      BadOption{{"--memory-limit", "5"}, "memory_limit"},
                      BadOption{{"--memory-limit", "12Q"}, "memory_limit"},
                      BadOption{{"--memory-limit", "99999999999999999999G"}, "memory_limit"},
                      BadOption{{"--cpu-limit", "150"}, "cpu_limit"},
                      BadOption{{"--cpu-limit", "0"}, "cpu_limit"},
                      BadOption{{"--cpu-limit", "lots"}, "cpu_limit"},
                      BadOption{{"--max-processes", "-1"}, "max_processes"},
                      BadOption{{"--max-processes", "0"}, "max_processes"},
                      BadOption{{"--compiler", "foo"}, "compiler"},
                      BadOption{{"--env", "NOEQUALS"}, "env"},
                      BadOption{{"--env", "=value"}, "env"}, BadOption{{"--env", "1BAD=x"}, "env"},
                      BadOption{{"--env", "PATH=/evil"}, "env"},
                      BadOption{{"--env", "LD_PRELOAD=/evil.so"}, "env"},
                      BadOption{{"--env", "HOME=/root"}, "env"},
                      BadOption{{"--restricted-module", "Bad Name"}, "restricted_modules"},
                      BadOption{{"--allowed-operation", "launch_missiles"}, "allowed_operations"}),
    [](const ::testing::TestParamInfo<BadOption>& p) { return "case" + std::to_string(p.index); });

TEST_F(BadInput, TempDirThatIsNotADirectory)
{
  auto run = compile(example_dir("plain_lib"),
                     {"--compiler", "elixirc", "--temp-dir", (scratch() / "missing").string()});
  ASSERT_TRUE(is_error(run, "invalid_option", 2));
  EXPECT_EQ(run.json()["error"]["option"], "temp_dir");
  std::ofstream(scratch() / "a-file") << "x";
  auto file = compile(example_dir("plain_lib"),
                      {"--compiler", "elixirc", "--temp-dir", (scratch() / "a-file").string()});
  ASSERT_TRUE(is_error(file, "invalid_option", 2));
  EXPECT_EQ(file.json()["error"]["option"], "temp_dir");
}

TEST_F(BadInput, UnreadableSourceFile)
{
  if (::geteuid() == 0) {
    GTEST_SKIP() << "running as root: chmod 000 does not make a file unreadable";
  }
  auto sandbox_path = copy_example("plain_lib");
  auto file = sandbox_path / "lib" / "shapes.ex";
  ::chmod(file.c_str(), 0);
  auto run = compile(sandbox_path, {"--compiler", "elixirc"});
  ::chmod(file.c_str(), 0644);
  EXPECT_EQ(run.exit_code, 1) << run.describe();
  EXPECT_FALSE(run.json().value("ok", true));
}

TEST_F(BadInput, HexDependencyIsDependenciesUnavailable)
{
  auto sandbox_path = copy_example("hello_mix");
  std::ofstream(sandbox_path / "mix.exs") << "defmodule HelloMix.MixProject do\n"
                                             "  use Mix.Project\n"
                                             "  def project do\n"
                                             "    [app: :hello_mix, version: \"0.1.0\",\n"
                                             "     deps: [{:jason, \"~> 1.0\"}]]\n"
                                             "  end\n"
                                             "end\n";
  auto run = compile(sandbox_path);
  ASSERT_TRUE(is_error(run, "dependencies_unavailable", 1));
  auto error = run.json()["error"];
  EXPECT_EQ(error["dependencies"], nlohmann::json::array({"jason"})) << error;
  EXPECT_TRUE(error["reason"].is_string());
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

TEST_F(BadInput, GitDependencyIsDependenciesUnavailable)
{
  auto sandbox_path = copy_example("hello_mix");
  std::ofstream(sandbox_path / "mix.exs") << "defmodule HelloMix.MixProject do\n"
                                             "  use Mix.Project\n"
                                             "  def project do\n"
                                             "    [app: :hello_mix, version: \"0.1.0\",\n"
                                             "     deps: [{:plug, git: \"https://example.com/plug.git\"}]]\n"
                                             "  end\n"
                                             "end\n";
  auto run = compile(sandbox_path);
  ASSERT_TRUE(is_error(run, "dependencies_unavailable", 1)) << run.describe();
  auto error = run.json()["error"];
  EXPECT_EQ(error["dependencies"], nlohmann::json::array({"plug"})) << error;
  EXPECT_NE(error["reason"].get<std::string>().find("git"), std::string::npos) << error;
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

TEST_F(BadInput, MixWithoutMixExs)
{
  auto run = compile(copy_example("plain_lib"), {"--compiler", "mix"});
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_NE(run.json()["error"]["reason"].get<std::string>().find("mix.exs"), std::string::npos);
  // mix is the default backend.
  EXPECT_TRUE(is_error(compile(copy_example("compile_error")), "invalid_sandbox_path", 1));
}

TEST_F(BadInput, EmptyLibWithElixirc)
{
  auto sandbox_path = make_sandbox("empty", {{"README.md", "nothing here\n"}});
  fs::create_directories(sandbox_path / "lib");
  ASSERT_TRUE(
      is_error(compile(sandbox_path, {"--compiler", "elixirc"}), "invalid_sandbox_path", 1));
  // And an Erlang sandbox without .erl files.
  EXPECT_TRUE(is_error(compile(sandbox_path, {"--compiler", "erlc"}), "invalid_sandbox_path", 1));
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

TEST_F(BadInput, InProcessGivesAResultOrATypedError)
{
  // Until the worker pool exists, in_process must say so with a typed error.
  auto run = compile(copy_example("plain_lib"), {"--compiler", "in_process"});
  auto json = run.json();
  ASSERT_TRUE(json.is_object()) << run.describe();
  if (run.exit_code == 0) {
    expect_success_contract(json);
  } else {
    EXPECT_TRUE(json["error"]["type"].is_string()) << run.describe();
    EXPECT_NE(json["error"]["type"], "compilation_failed") << run.describe();
  }
}

TEST_F(BadInput, NonUtf8PathsGiveValidJson)
{
  // File names are bytes; the JSON output must stay valid JSON (escaped or
  // replaced), never crash the command.
  const std::string bad_byte = "\xfe";
  std::vector<RunResult> runs = {
      compile(scratch() / ("missing" + bad_byte), {"--compiler", "elixirc"}),
      sandbox({"validate", (scratch() / ("missing" + bad_byte + ".beam")).string(), "--json"}),
      sandbox({"cleanup", (scratch() / ("missing" + bad_byte)).string(), "--json"}),
  };
  auto temp_root = scratch() / ("jobs" + bad_byte);
  fs::create_directories(temp_root);
  runs.push_back(
      compile(copy_example("erlang"), {"--compiler", "erlc", "--temp-dir", temp_root.string()}));
  for (const auto& run : runs) {
    if (run.signal != 0 || run.exit_code == 134) {
      FAIL() << "regression: --json output aborts on a path that is not UTF-8 "
                      "(nlohmann::json::dump throws type_error 316)\n"
                   << run.err;
    }
    EXPECT_TRUE(run.json().is_object()) << run.describe();
    EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 1) << run.describe();
  }
  EXPECT_EQ(runs.back().exit_code, 0) << runs.back().describe();
}

TEST_F(BadInput, UnsafeEngineKeyIsNotBlamedOnTheTempDirOption)
{
  // A key readable by others is refused; that is the engine's state, not a
  // bad --temp-dir given by the caller.
  auto sandbox_path = copy_example("erlang");
  auto first = compile(sandbox_path, {"--compiler", "erlc"});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  ASSERT_TRUE(fs::exists(state_dir() / "key"));
  fs::permissions(state_dir() / "key", fs::perms::others_read, fs::perm_options::add);
  auto run = compile(sandbox_path, {"--compiler", "erlc", "--temp-dir", job_root().string()});
  auto json = run.json();
  ASSERT_TRUE(json.is_object()) << run.describe();
  EXPECT_FALSE(json.value("ok", true)) << "a key readable by others was used";
  EXPECT_NE(json.dump().find("key"), std::string::npos) << run.describe();
  if (run.exit_code == 2 && json["error"].value("option", "") == "temp_dir") {
    FAIL() << "regression: an engine key with unsafe permissions is reported as "
                    "invalid_option temp_dir (exit 2) when --temp-dir is given: "
                 << json.dump();
  }
  EXPECT_EQ(run.exit_code, 1) << run.describe();
  EXPECT_NE(json["error"]["type"], "invalid_option") << run.describe();
}

} // namespace

} // namespace sandbox::test
