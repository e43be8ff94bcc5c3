// Post-compilation artifact checks on what a module body leaves in the job's
// work directory (elixirc writes to <work>/ebin and HOME is <work>/home).

#include "support.h"

#include <unistd.h>

#include <fstream>

namespace sandbox::test {

namespace {

const nlohmann::json* finding(const nlohmann::json& result, const std::string& path)
{
  if (!result.contains("suspicious_artifacts")) {
    return nullptr;
  }
  for (const auto& f : result["suspicious_artifacts"]) {
    if (f.value("path", "") == path) {
      return &f;
    }
  }
  return nullptr;
}

class ArtifactsTest : public SandboxTest {
protected:
  // Compiles a sandbox whose one module runs `body` at compile time, with
  // `work` and `ebin` bound to the job's directories.
  RunResult compile_body(const std::string& name, const std::string& body)
  {
    auto path = make_sandbox(
        name, {{"lib/planter.ex", "defmodule Planter do\n"
                                  "  work = Path.join(System.fetch_env!(\"HOME\"), \"..\")\n"
                                  "  ebin = Path.join(work, \"ebin\")\n" +
                                      body +
                                      "  def ok, do: :ok\n"
                                      "end\n"}});
    // The planter writes into the job's output: the scanner would reject it
    // first; these tests are about what output collection does.
    return compile(path, {"--compiler", "elixirc", "--no-security-scan"});
  }
};

TEST_F(ArtifactsTest, SymlinkInTheOutputDirIsReportedAndNotCollected)
{
  auto run =
      compile_body("symlink", "  File.ln_s!(\"/etc/passwd\", Path.join(ebin, \"evil.beam\"))\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  const auto* f = finding(result, "ebin/evil.beam");
  ASSERT_NE(f, nullptr) << result["suspicious_artifacts"].dump(2);
  EXPECT_EQ((*f)["kind"], "symlink");
  EXPECT_EQ((*f)["severity"], "high");
  EXPECT_TRUE((*f)["message"].is_string());
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Planter.beam"}));
  for (const auto& beam : beam_paths(result)) {
    EXPECT_FALSE(fs::is_symlink(beam)) << beam;
  }
  fs::path temp = result["temp_dir"].get<std::string>();
  EXPECT_FALSE(fs::exists(fs::symlink_status(temp / "ebin" / "evil.beam")));
  // The report mentions it.
  auto report = sandbox({"report"}, with_stdin(run.out));
  EXPECT_EQ(report.exit_code, 0) << report.describe();
  EXPECT_NE(report.out.find("ebin/evil.beam"), std::string::npos) << report.out;
}

TEST_F(ArtifactsTest, ScriptInTheWorkDirIsReported)
{
  auto run = compile_body("script",
                          "  File.write!(Path.join(work, \"evil.sh\"), \"#!/bin/sh\\nid\\n\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  const auto* f = finding(result, "evil.sh");
  ASSERT_NE(f, nullptr) << result["suspicious_artifacts"].dump(2);
  EXPECT_EQ((*f)["kind"], "script");
  EXPECT_EQ((*f)["severity"], "high");
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Planter.beam"}));
}

TEST_F(ArtifactsTest, HardLinkIsReportedAndNotCollected)
{
  auto run =
      compile_body("hardlink", "  data = Path.join(System.fetch_env!(\"HOME\"), \"data\")\n"
                               "  File.write!(data, \"not a beam\")\n"
                               "  File.ln!(data, Path.join(ebin, \"Elixir.Linked.beam\"))\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  const auto* f = finding(result, "ebin/Elixir.Linked.beam");
  ASSERT_NE(f, nullptr) << result["suspicious_artifacts"].dump(2);
  EXPECT_EQ((*f)["kind"], "hard_link");
  EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Planter.beam"}));
  auto modules = result["modules"].get<std::vector<std::string>>();
  EXPECT_EQ(modules, (std::vector<std::string>{"Elixir.Planter"}));
}

TEST_F(ArtifactsTest, ExecutableAndStrayOutputAreReported)
{
  auto run = compile_body("exec", "  File.write!(Path.join(work, \"tool\"), \"binary\")\n"
                                  "  File.chmod!(Path.join(work, \"tool\"), 0o755)\n"
                                  "  File.write!(Path.join(ebin, \"notes.txt\"), \"hi\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  const auto* exec = finding(result, "tool");
  ASSERT_NE(exec, nullptr) << result["suspicious_artifacts"].dump(2);
  EXPECT_EQ((*exec)["kind"], "executable");
  const auto* stray = finding(result, "ebin/notes.txt");
  ASSERT_NE(stray, nullptr) << result["suspicious_artifacts"].dump(2);
  EXPECT_EQ((*stray)["kind"], "unexpected_file");
  fs::path temp = result["temp_dir"].get<std::string>();
  EXPECT_FALSE(fs::exists(temp / "ebin" / "notes.txt"));
}

TEST_F(ArtifactsTest, CleanCompileHasNoFindings)
{
  auto run = compile_body("clean", "");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.json()["suspicious_artifacts"], nlohmann::json::array());
}

TEST_F(ArtifactsTest, FifosInTheWorkDirDoNotHangTheEngine)
{
  // The engine reads files the job could replace: a FIFO there must not block
  // it. Mix's engine report file and a planted .beam are both made FIFOs.
  auto path = make_sandbox(
      "fifo", {{"mix.exs", "defmodule Fifo.MixProject do\n"
                           "  use Mix.Project\n"
                           "  def project, do: [app: :fifo, version: \"0.1.0\"]\n"
                           "end\n"},
               {"lib/fifo.ex", "defmodule Fifo do\n"
                               "  for {name, value} <- System.get_env(),\n"
                               "      String.starts_with?(name, \"SANDBOX\"),\n"
                               "      File.regular?(value) do\n"
                               "    File.rm!(value)\n"
                               "    {_, 0} = System.cmd(\"mkfifo\", [value])\n"
                               "  end\n"
                               "  ebin = Path.join(System.fetch_env!(\"MIX_BUILD_PATH\"), "
                               "\"lib/fifo/ebin\")\n"
                               "  File.mkdir_p!(ebin)\n"
                               "  {_, 0} = System.cmd(\"mkfifo\", [Path.join(ebin, "
                               "\"Elixir.Pipe.beam\")])\n"
                               "  def ok, do: :ok\n"
                               "end\n"}});
  auto run = compile(path, {}, with_timeout(60'000));
  ASSERT_FALSE(run.timed_out) << "the engine blocked on a FIFO the job made\n" << run.describe();
  auto result = run.json();
  ASSERT_TRUE(result.is_object()) << run.describe();
  if (run.exit_code == 0) {
    EXPECT_EQ(beam_names(result), (std::vector<std::string>{"Elixir.Fifo.beam"}));
    const auto* pipe = finding(result, "build/lib/fifo/ebin/Elixir.Pipe.beam");
    ASSERT_NE(pipe, nullptr) << result["suspicious_artifacts"].dump(2);
    EXPECT_EQ((*pipe)["kind"], "special_file");
  } else {
    EXPECT_EQ(run.exit_code, 1) << run.describe();
    EXPECT_TRUE(result["error"]["type"].is_string()) << run.describe();
  }
}

TEST_F(ArtifactsTest, PrebuiltBeamsInTheSandboxAreNotHandedOver)
{
  // BEAMs planted in the sandbox (an ebin/ and a stale _build) are never
  // results: only what this compile produced is.
  auto sandbox_path = copy_example("hello_mix");
  auto planted =
      read_text(source_dir() / "tests" / "data" / "beam" / "regressions" / "valid-minimal.beam");
  for (const auto* dir : {"ebin", "_build/dev/lib/hello_mix/ebin", "priv"}) {
    fs::create_directories(sandbox_path / dir);
    std::ofstream(sandbox_path / dir / "Elixir.Planted.beam", std::ios::binary) << planted;
  }
  ASSERT_GT(planted.size(), 8U);
  auto run = compile(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(beam_names(run.json()),
            (std::vector<std::string>{"Elixir.HelloMix.Counter.beam", "Elixir.HelloMix.Macros.beam",
                                      "Elixir.HelloMix.beam"}));
  auto plain = copy_example("plain_lib");
  fs::create_directories(plain / "ebin");
  std::ofstream(plain / "ebin" / "Elixir.Planted.beam", std::ios::binary) << planted;
  std::ofstream(plain / "lib" / "Elixir.Planted.beam", std::ios::binary) << planted;
  auto elixirc = compile(plain, {"--compiler", "elixirc"});
  ASSERT_EQ(elixirc.exit_code, 0) << elixirc.describe();
  EXPECT_EQ(beam_names(elixirc.json()),
            (std::vector<std::string>{"Elixir.Shapes.Format.beam", "Elixir.Shapes.beam"}));
}

TEST_F(ArtifactsTest, PlantedCacheIsNotTrusted)
{
  // The reference implementation trusted .sandbox_cache inside the sandbox: a
  // planted last_compilation.json gave a cache hit with attacker-chosen
  // beam_files and a temp_dir the host later deleted.
  auto victim = scratch() / "victim";
  fs::create_directories(victim);
  std::ofstream(victim / "precious") << "keep me";
  auto sandbox_path = copy_example("plain_lib");
  fs::create_directories(sandbox_path / ".sandbox_cache");
  nlohmann::json planted = {{"beam_files", {"/etc/passwd"}},
                            {"temp_dir", victim.string()},
                            {"timestamp", 32503680000},
                            {"compilation_time", 1},
                            {"cache_hit", true},
                            {"incremental", true},
                            {"compilation_strategy", "cache_hit"},
                            {"app_file", nullptr},
                            {"output", ""},
                            {"warnings", nlohmann::json::array()}};
  std::ofstream(sandbox_path / ".sandbox_cache" / "last_compilation.json") << planted.dump();
  std::ofstream(sandbox_path / ".sandbox_cache" / "file_hashes.json") << "{}";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--compiler", "elixirc", "--incremental"},
        std::vector<std::string>{"--compiler", "elixirc"}}) {
    auto run = compile(sandbox_path, args);
    ASSERT_EQ(run.exit_code, 0) << run.describe();
    auto result = run.json();
    expect_success_contract(result);
    EXPECT_EQ(beam_names(result),
              (std::vector<std::string>{"Elixir.Shapes.Format.beam", "Elixir.Shapes.beam"}));
    EXPECT_NE(result["temp_dir"], victim.string());
    auto cleanup = sandbox({"cleanup", result["temp_dir"].get<std::string>()});
    EXPECT_EQ(cleanup.exit_code, 0) << cleanup.describe();
  }
  EXPECT_EQ(sandbox({"cleanup", victim.string()}).exit_code, 1);
  EXPECT_TRUE(fs::exists(victim / "precious"));
}

} // namespace

} // namespace sandbox::test
