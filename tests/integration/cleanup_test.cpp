// Job temp dirs: removed on every error path, kept (0700) on success, and
// removable with `sandbox cleanup` only when this engine made them.

#include "support.h"

#include <sys/stat.h>

#include <fstream>

namespace sandbox::test {

namespace {

class TempDirs : public SandboxTest {
protected:
  TempDirs() { fs::create_directories(jobs()); }

  [[nodiscard]] fs::path jobs() const { return scratch() / "jobs"; }

  std::size_t job_dirs() const { return entries_with_prefix(jobs(), "sandbox-job-").size(); }

  // Compiles with --temp-dir jobs(); expects `type` and no job dir left.
  void expect_failure_leaves_nothing(const fs::path& sandbox_path, std::vector<std::string> args,
                                     const std::string& type)
  {
    ASSERT_EQ(job_dirs(), 0U);
    args.insert(args.end(), {"--temp-dir", jobs().string(), "--no-security-scan"});
    auto run = compile(sandbox_path, args);
    EXPECT_TRUE(is_error(run, type, 1)) << sandbox_path;
    EXPECT_EQ(job_dirs(), 0U) << "a job temp dir was left after " << type;
    EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
  }

  // A successful compile's temp_dir.
  fs::path compiled_temp_dir()
  {
    auto run =
        compile(copy_example("erlang"), {"--compiler", "erlc", "--temp-dir", jobs().string()});
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    return run.json().value("temp_dir", "");
  }

  RunResult cleanup(const fs::path& path, bool as_json = false)
  {
    std::vector<std::string> args = {"cleanup", path.string()};
    if (as_json) {
      args.emplace_back("--json");
    }
    return sandbox(args);
  }
};

TEST_F(TempDirs, RemovedOnEveryErrorPath)
{
  expect_failure_leaves_nothing(copy_example("compile_error"), {"--compiler", "elixirc"},
                                "compilation_failed");
  // The backend finds nothing to compile after the temp dir was made.
  auto empty = make_sandbox("empty", {{"lib/README.md", "no sources\n"}});
  expect_failure_leaves_nothing(empty, {"--compiler", "elixirc"}, "invalid_sandbox_path");
  expect_failure_leaves_nothing(copy_example("plain_lib"), {"--compiler", "mix"},
                                "invalid_sandbox_path");
  auto raising = make_sandbox(
      "raise", {{"lib/boom.ex", "defmodule Boom do\n"
                                "  dir = Path.join(System.fetch_env!(\"HOME\"), \"locked\")\n"
                                "  File.mkdir_p!(Path.join(dir, \"inner\"))\n"
                                "  File.write!(Path.join(dir, \"inner/file\"), \"x\")\n"
                                "  File.chmod!(Path.join(dir, \"inner\"), 0o000)\n"
                                "  File.chmod!(dir, 0o500)\n"
                                "  raise \"boom\"\n"
                                "end\n"}});
  expect_failure_leaves_nothing(raising, {"--compiler", "elixirc"}, "compilation_failed");
  auto slow = make_sandbox("slow", {{"lib/slow.ex", "defmodule Slow do\n"
                                                    "  Process.sleep(:infinity)\n"
                                                    "end\n"}});
  expect_failure_leaves_nothing(slow, {"--compiler", "elixirc", "--timeout", "1500"},
                                "compilation_timeout");
}

TEST_F(TempDirs, RemovedWhenAProducedBeamIsInvalid)
{
  // The module body plants a corrupt BEAM in the output directory.
  auto sandbox_path = make_sandbox(
      "corrupt", {{"lib/plant.ex", "defmodule Plant do\n"
                                   "  ebin = Path.join(System.fetch_env!(\"HOME\"), \"../ebin\")\n"
                                   "  File.write!(Path.join(ebin, \"Elixir.Bad.beam\"), "
                                   "\"FOR1 garbage\")\n"
                                   "end\n"}});
  expect_failure_leaves_nothing(sandbox_path, {"--compiler", "elixirc"}, "beam_validation_failed");
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--no-security-scan"});
  ASSERT_TRUE(is_error(run, "beam_validation_failed", 1));
  auto error = run.json()["error"];
  EXPECT_EQ(error["file"], "Elixir.Bad.beam") << error;
  EXPECT_TRUE(error["reason"].is_string() && !error["reason"].get<std::string>().empty());

  // The failure comes from validation: without it the compile succeeds.
  auto unchecked = compile(sandbox_path, {"--compiler", "elixirc", "--no-validate-beams", "--no-security-scan"});
  EXPECT_EQ(unchecked.exit_code, 0) << unchecked.describe();
}

TEST_F(TempDirs, KeptOnSuccessAndRemovedByCleanup)
{
  auto temp = compiled_temp_dir();
  ASSERT_FALSE(temp.empty());
  struct stat st {};
  ASSERT_EQ(::lstat(temp.c_str(), &st), 0) << temp;
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700U);
  EXPECT_EQ(temp.parent_path(), jobs());
  EXPECT_TRUE(fs::exists(temp / "ebin" / "calc.beam"));

  auto run = cleanup(temp, true);
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.json(), nlohmann::json({{"ok", true}}));
  EXPECT_FALSE(fs::exists(temp));
  // A second cleanup of the same path is refused: it no longer exists.
  EXPECT_TRUE(is_error(cleanup(temp, true), "invalid_sandbox_path", 1));
}

TEST_F(TempDirs, CleanupRefusesAPlainDirectory)
{
  auto plain = scratch() / "plain";
  fs::create_directories(plain / "sub");
  std::ofstream(plain / "sub" / "keep.txt") << "precious";
  auto run = cleanup(plain, true);
  ASSERT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_EQ(run.json()["error"]["path"], plain.string());
  EXPECT_TRUE(fs::exists(plain / "sub" / "keep.txt"));
  auto human = cleanup(plain);
  EXPECT_EQ(human.exit_code, 1);
  EXPECT_FALSE(human.err.empty());
  EXPECT_TRUE(fs::exists(plain / "sub" / "keep.txt"));
}

TEST_F(TempDirs, CleanupRefusesACopyOfARealTempDir)
{
  auto temp = compiled_temp_dir();
  ASSERT_FALSE(temp.empty());
  auto copy = scratch() / "copy-of-temp";
  // cp -r keeps the marker file but not the directory's identity.
  auto cp = run_process({"cp", "-r", temp.string(), copy.string()});
  ASSERT_EQ(cp.exit_code, 0) << cp.describe();
  ASSERT_EQ(entries_with_prefix(copy, ".").size(), entries_with_prefix(temp, ".").size());
  EXPECT_TRUE(is_error(cleanup(copy, true), "invalid_sandbox_path", 1));
  EXPECT_TRUE(fs::exists(copy / "ebin" / "calc.beam"));
  // The original still verifies.
  EXPECT_EQ(cleanup(temp).exit_code, 0);
  EXPECT_FALSE(fs::exists(temp));
}

TEST_F(TempDirs, CleanupRefusesASymlinkToARealTempDir)
{
  auto temp = compiled_temp_dir();
  ASSERT_FALSE(temp.empty());
  auto link = scratch() / "link-to-temp";
  fs::create_directory_symlink(temp, link);
  EXPECT_TRUE(is_error(cleanup(link, true), "invalid_sandbox_path", 1));
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::exists(temp / "ebin" / "calc.beam"));
}

class SymlinkSpelling : public TempDirs, public ::testing::WithParamInterface<std::string> {};

TEST_P(SymlinkSpelling, CleanupRefusesASymlinkHoweverSpelled)
{
  auto temp = compiled_temp_dir();
  ASSERT_FALSE(temp.empty());
  auto link = scratch() / "link-to-temp";
  fs::create_directory_symlink(temp, link);
  // "link/" and "link/." make lstat(2) follow the link: the caller still
  // passed a symlink.
  auto run = cleanup(link.string() + GetParam(), true);
  if (run.exit_code == 0) {
    FAIL() << "regression: `sandbox cleanup " << link.string() + GetParam()
                 << "` removes the temp dir the symlink points to";
  }
  EXPECT_TRUE(is_error(run, "invalid_sandbox_path", 1));
  EXPECT_TRUE(fs::exists(temp / "ebin" / "calc.beam")) << "removed through a symlink";
  EXPECT_TRUE(fs::is_symlink(link));
}

INSTANTIATE_TEST_SUITE_P(Spellings, SymlinkSpelling, ::testing::Values("/", "//", "/.", "/./"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return "case" + std::to_string(p.index);
                         });

TEST_F(TempDirs, CleanupRefusesAMovedOrTamperedTempDir)
{
  auto temp = compiled_temp_dir();
  ASSERT_FALSE(temp.empty());
  auto moved = scratch() / "moved-temp";
  fs::rename(temp, moved);
  EXPECT_TRUE(is_error(cleanup(moved, true), "invalid_sandbox_path", 1));
  EXPECT_TRUE(fs::exists(moved));
  fs::rename(moved, temp);

  // Another engine (another key) did not make it.
  auto other_key = sandbox({"cleanup", temp.string()},
                           with_env({{"SANDBOX_STATE_DIR", (scratch() / "other").string()}}));
  EXPECT_EQ(other_key.exit_code, 1) << other_key.describe();
  EXPECT_TRUE(fs::exists(temp));

  // An edited marker does not verify.
  auto markers = entries_with_prefix(temp, ".");
  ASSERT_EQ(markers.size(), 1U);
  auto text = read_text(markers.front());
  ASSERT_FALSE(text.empty());
  text[0] = text[0] == '0' ? '1' : '0';
  std::ofstream(markers.front(), std::ios::trunc) << text;
  EXPECT_TRUE(is_error(cleanup(temp, true), "invalid_sandbox_path", 1));
  EXPECT_TRUE(fs::exists(temp));
}

} // namespace

} // namespace sandbox::test
