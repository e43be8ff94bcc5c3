#include "compiler/artifacts.h"
#include "util/fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <gtest/gtest.h>
#include <optional>

namespace sandbox::compiler {

namespace {

class Artifacts : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create("/tmp", "artifacts-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
    fs::create_directories(work() / "ebin");
    fs::create_directories(work() / "home");
    fs::create_directories(work() / "tmp");
  }

  [[nodiscard]] fs::path root() const { return m_dir->path(); }
  [[nodiscard]] fs::path work() const { return root() / "work"; }
  [[nodiscard]] fs::path out() const { return root() / "out"; }

  fs::path write(const fs::path& relative, const std::string& text, unsigned mode = 0644) const
  {
    auto path = work() / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }

  Collected collect(const CollectLimits& limits = {}) const
  {
    auto collected = collect_outputs(work(), {work() / "ebin"}, out(), limits);
    EXPECT_TRUE(collected) << (collected ? "" : collected.error());
    return collected ? *collected : Collected{};
  }

  static const ArtifactFinding* find(const Collected& collected, const std::string& path)
  {
    for (const auto& f : collected.findings) {
      if (f.path == path) {
        return &f;
      }
    }
    return nullptr;
  }

private:
  std::optional<util::TempDir> m_dir;
};

TEST_F(Artifacts, CopiesBeamsAndAppFilesOut)
{
  write("ebin/Elixir.B.beam", "beam-b");
  write("ebin/Elixir.A.beam", "beam-a");
  write("ebin/app.app", "{application,app,[]}.");
  auto collected = collect();
  EXPECT_EQ(collected.beam_files,
            (std::vector<fs::path>{out() / "Elixir.A.beam", out() / "Elixir.B.beam"}));
  EXPECT_EQ(collected.app_files, std::vector<fs::path>{out() / "app.app"});
  EXPECT_TRUE(collected.findings.empty());
  EXPECT_EQ(*util::read_file(out() / "Elixir.A.beam"), "beam-a");
  // Copies, not links to the job's files.
  struct stat copy {};
  struct stat original {};
  ASSERT_EQ(::lstat((out() / "Elixir.A.beam").c_str(), &copy), 0);
  ASSERT_EQ(::lstat((work() / "ebin" / "Elixir.A.beam").c_str(), &original), 0);
  EXPECT_TRUE(S_ISREG(copy.st_mode));
  EXPECT_NE(copy.st_ino, original.st_ino);
  EXPECT_EQ(copy.st_nlink, 1U);
}

TEST_F(Artifacts, OnlyTheOutputDirectoriesAreCollected)
{
  write("home/Elixir.Stray.beam", "stray");
  write("ebin/Elixir.A.beam", "a");
  auto collected = collect();
  EXPECT_EQ(collected.beam_files, std::vector<fs::path>{out() / "Elixir.A.beam"});
  EXPECT_FALSE(fs::exists(out() / "Elixir.Stray.beam"));
}

TEST_F(Artifacts, SymlinkIsReportedAndNeverFollowed)
{
  fs::create_symlink("/etc/passwd", work() / "ebin" / "evil.beam");
  fs::create_symlink("/etc", work() / "home" / "etc");
  auto collected = collect();
  EXPECT_TRUE(collected.beam_files.empty());
  EXPECT_FALSE(fs::exists(fs::symlink_status(out() / "evil.beam")));
  const auto* f = find(collected, "ebin/evil.beam");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->kind, "symlink");
  EXPECT_EQ(f->severity, "high");
  const auto* dir_link = find(collected, "home/etc");
  ASSERT_NE(dir_link, nullptr);
  EXPECT_EQ(dir_link->kind, "symlink");
  // Nothing below the linked directory was listed.
  EXPECT_EQ(find(collected, "home/etc/passwd"), nullptr);
}

TEST_F(Artifacts, MixPrivAndIncludeLinksAreExpected)
{
  fs::create_directories(work() / "build" / "lib" / "app" / "ebin");
  fs::create_directory_symlink("/nonexistent/priv", work() / "build" / "lib" / "app" / "priv");
  fs::create_directory_symlink("/nonexistent/include",
                               work() / "build" / "lib" / "app" / "include");
  fs::create_directory_symlink("/etc", work() / "build" / "lib" / "app" / "other");
  auto collected = collect();
  EXPECT_EQ(find(collected, "build/lib/app/priv"), nullptr);
  EXPECT_EQ(find(collected, "build/lib/app/include"), nullptr);
  ASSERT_NE(find(collected, "build/lib/app/other"), nullptr);
}

TEST_F(Artifacts, HardLinkIsReportedAndNotCollected)
{
  auto data = write("home/data", "not a beam");
  fs::create_hard_link(data, work() / "ebin" / "Elixir.Linked.beam");
  write("ebin/Elixir.Good.beam", "good");
  auto collected = collect();
  EXPECT_EQ(collected.beam_files, std::vector<fs::path>{out() / "Elixir.Good.beam"});
  const auto* f = find(collected, "ebin/Elixir.Linked.beam");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->kind, "hard_link");
  EXPECT_FALSE(fs::exists(out() / "Elixir.Linked.beam"));
}

TEST_F(Artifacts, ScriptsAndExecutablesAreReported)
{
  write("evil.sh", "#!/bin/sh\n", 0644);
  write("home/run.BAT", "echo", 0644);
  write("ebin/tool.py", "print()", 0644);
  write("home/tool",
        "\x7f"
        "ELF",
        0755);
  write("ebin/Elixir.Exec.beam", "beam", 0755);
  auto collected = collect();
  for (const char* script : {"evil.sh", "home/run.BAT", "ebin/tool.py"}) {
    const auto* f = find(collected, script);
    ASSERT_NE(f, nullptr) << script;
    EXPECT_EQ(f->kind, "script") << script;
    EXPECT_EQ(f->severity, "high");
  }
  const auto* exec = find(collected, "home/tool");
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->kind, "executable");
  // An executable .beam in the output dir is reported, not collected.
  const auto* exec_beam = find(collected, "ebin/Elixir.Exec.beam");
  ASSERT_NE(exec_beam, nullptr);
  EXPECT_EQ(exec_beam->kind, "executable");
  EXPECT_TRUE(collected.beam_files.empty());
}

TEST_F(Artifacts, FifoIsASpecialFile)
{
  ASSERT_EQ(::mkfifo((work() / "ebin" / "Elixir.Pipe.beam").c_str(), 0644), 0);
  ASSERT_EQ(::mkfifo((work() / "home" / "pipe").c_str(), 0644), 0);
  auto collected = collect();
  EXPECT_TRUE(collected.beam_files.empty());
  for (const char* path : {"ebin/Elixir.Pipe.beam", "home/pipe"}) {
    const auto* f = find(collected, path);
    ASSERT_NE(f, nullptr) << path;
    EXPECT_EQ(f->kind, "special_file");
  }
}

TEST_F(Artifacts, OversizedOutputIsNotCollected)
{
  write("ebin/Elixir.Big.beam", std::string(2000, 'x'));
  write("ebin/Elixir.Small.beam", std::string(100, 'x'));
  CollectLimits limits;
  limits.max_file_bytes = 1000;
  auto collected = collect(limits);
  EXPECT_EQ(collected.beam_files, std::vector<fs::path>{out() / "Elixir.Small.beam"});
  const auto* f = find(collected, "ebin/Elixir.Big.beam");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->kind, "oversized");
}

TEST_F(Artifacts, TotalSizeCapIsAnError)
{
  write("ebin/Elixir.A.beam", std::string(600, 'a'));
  write("ebin/Elixir.B.beam", std::string(600, 'b'));
  CollectLimits limits;
  limits.max_total_bytes = 1000;
  auto collected = collect_outputs(work(), {work() / "ebin"}, out(), limits);
  ASSERT_FALSE(collected);
  EXPECT_NE(collected.error().find("1000"), std::string::npos) << collected.error();
}

TEST_F(Artifacts, TooManyFilesIsReported)
{
  for (int i = 0; i < 5; ++i) {
    write("home/f" + std::to_string(i), "x");
  }
  CollectLimits limits;
  limits.max_files = 3;
  auto collected = collect(limits);
  const auto* f = find(collected, ".");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->kind, "oversized");
}

TEST_F(Artifacts, StrayFilesInOutputAndTmp)
{
  write("ebin/notes.txt", "hi");
  write("tmp/leftover", "x");
  write("home/.cache/ok", "x");
  auto collected = collect();
  const auto* stray = find(collected, "ebin/notes.txt");
  ASSERT_NE(stray, nullptr);
  EXPECT_EQ(stray->kind, "unexpected_file");
  EXPECT_EQ(stray->severity, "medium");
  const auto* temp = find(collected, "tmp/leftover");
  ASSERT_NE(temp, nullptr);
  EXPECT_EQ(temp->kind, "temp_file");
  EXPECT_EQ(temp->severity, "low");
  EXPECT_EQ(find(collected, "home/.cache/ok"), nullptr);
  EXPECT_FALSE(fs::exists(out() / "notes.txt"));
}

TEST_F(Artifacts, FindingJson)
{
  auto json = to_json(ArtifactFinding{"ebin/evil.beam", "symlink", "high", "never followed"});
  EXPECT_EQ(json, nlohmann::json({{"path", "ebin/evil.beam"},
                                  {"kind", "symlink"},
                                  {"severity", "high"},
                                  {"message", "never followed"}}));
}

TEST_F(Artifacts, MissingWorkDirectoryIsAnError)
{
  auto collected = collect_outputs(root() / "missing", {}, out());
  EXPECT_FALSE(collected);
}

TEST_F(Artifacts, SameNameInTwoOutputDirectoriesIsNotCollectedTwice)
{
  // Mix hands over the project's ebin and its path dependencies' ebins; they
  // are flattened into one directory, so a name can only be handed over once.
  write("build/lib/app/ebin/Elixir.Same.beam", "from the project");
  write("build/lib/dep/ebin/Elixir.Same.beam", "from a dependency");
  auto collected = collect_outputs(
      work(), {work() / "build/lib/app/ebin", work() / "build/lib/dep/ebin"}, out());
  ASSERT_TRUE(collected) << collected.error();
  auto beams = collected->beam_files;
  std::sort(beams.begin(), beams.end());
  auto unique = beams;
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  if (unique.size() != beams.size()) {
    FAIL() << "regression: collect_outputs lists out/Elixir.Same.beam twice and the second "
                    "output directory's file silently replaces the first";
  }
  EXPECT_EQ(beams, std::vector<fs::path>{out() / "Elixir.Same.beam"});
  EXPECT_EQ(*util::read_file(out() / "Elixir.Same.beam"), "from the project");
}

} // namespace

} // namespace sandbox::compiler
