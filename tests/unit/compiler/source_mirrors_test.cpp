#include "compiler/source_mirrors.h"
#include "util/fs.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <thread>

namespace sandbox::compiler {

namespace {

// Each test has its own temp root (TMPDIR), where the mirrors live too.
class SourceMirrors : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create("/tmp", "source-mirrors-test-");
    ASSERT_TRUE(dir.has_value());
    m_root = dir->keep();
    ::setenv("TMPDIR", m_root.c_str(), 1);
    for (const char* sub : {"source", "sandbox", "prior"}) {
      fs::create_directories(m_root / sub);
    }
    enable_source_mirrors();
  }

  void TearDown() override
  {
    disable_source_mirrors();
    (void)util::remove_tree(m_root);
    ::unsetenv("TMPDIR");
  }

  fs::path source() const { return m_root / "source"; }
  fs::path sandbox() const { return m_root / "sandbox"; }
  fs::path prior() const { return m_root / "prior"; }

  static void write(const fs::path& path, const std::string& text)
  {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }

  // Every entry under `dir`: a file's content, "<dir>" or "-> target".
  static std::map<std::string, std::string> contents(const fs::path& dir)
  {
    std::map<std::string, std::string> out;
    auto tree = util::list_tree(dir);
    EXPECT_TRUE(tree.has_value());
    for (const auto& e : tree.value_or(std::vector<util::TreeEntry>{})) {
      auto path = dir / e.relative;
      if (e.type == fs::file_type::directory) {
        out[e.relative.string()] = "<dir>";
      } else if (e.type == fs::file_type::symlink) {
        out[e.relative.string()] = "-> " + fs::read_symlink(path).string();
      } else {
        out[e.relative.string()] = util::read_file(path, 1 << 20).value_or("?");
      }
    }
    return out;
  }

  std::expected<LentSources, std::string> lend(const std::vector<PriorBeam>& beams = {})
  {
    return lend_sources(source().string(), source(), sandbox(), prior(), beams);
  }

  std::size_t mirror_roots() const
  {
    std::size_t n = 0;
    for (const auto& entry : fs::directory_iterator(m_root)) {
      n += entry.path().filename().string().starts_with("sandbox-mirrors-") ? 1 : 0;
    }
    return n;
  }

  fs::path m_root;
};

TEST_F(SourceMirrors, ALentCopyIsTheTreeAsItIsNowAndGoesBackEmptyingTheWorkersDirectories)
{
  write(source() / "mix.exs", "defmodule P.MixProject do end\n");
  write(source() / "lib/a.ex", "defmodule A do end\n");
  write(source() / "lib/deep/b.ex", "defmodule B do end\n");
  fs::create_symlink("a.ex", source() / "lib/link.ex");
  {
    auto lent = lend();
    ASSERT_TRUE(lent.has_value()) << lent.error();
    EXPECT_FALSE(lent->reused());
    EXPECT_EQ(contents(sandbox()), contents(source()));
    lent->give_back();
  }
  EXPECT_TRUE(fs::is_empty(sandbox()));
  EXPECT_TRUE(fs::is_empty(prior()));
  EXPECT_EQ(mirror_roots(), 1u);

  // Every kind of change at once, right after the last copy: same-size edit,
  // new file and directory, removal, a file that became a directory, a link
  // retargeted.
  write(source() / "lib/a.ex", "defmodule Z do end\n");
  write(source() / "lib/new/c.ex", "defmodule C do end\n");
  fs::remove(source() / "mix.exs");
  fs::remove_all(source() / "lib/deep");
  write(source() / "lib/deep", "now a file\n");
  fs::remove(source() / "lib/link.ex");
  fs::create_symlink("new/c.ex", source() / "lib/link.ex");
  auto again = lend();
  ASSERT_TRUE(again.has_value()) << again.error();
  EXPECT_TRUE(again->reused());
  EXPECT_EQ(contents(sandbox()), contents(source()));
  again->give_back();
  EXPECT_TRUE(fs::is_empty(sandbox()));
}

TEST_F(SourceMirrors, OnlyWhatChangedIsCopiedOnceItIsOlderThanTheRacyWindow)
{
  for (int i = 0; i < 20; ++i) {
    write(source() / "lib" / ("m" + std::to_string(i) + ".ex"), "defmodule M" + std::to_string(i) + " do end\n");
  }
  ASSERT_TRUE(lend().has_value()); // the first copy, given back at once
  // Entries changed less than 2 s before they were copied are copied again.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  ASSERT_TRUE(lend().has_value()); // copies them again, now outside the window
  auto quiet = lend();
  ASSERT_TRUE(quiet.has_value());
  EXPECT_EQ(quiet->copied(), 0u);
  quiet->give_back();
  write(source() / "lib/m7.ex", "defmodule M7 do def x, do: 1 end\n");
  auto edited = lend();
  ASSERT_TRUE(edited.has_value());
  EXPECT_EQ(edited->copied(), 1u);
  EXPECT_EQ(util::read_file(sandbox() / "lib/m7.ex", 1 << 20).value_or(""), "defmodule M7 do def x, do: 1 end\n");
}

TEST_F(SourceMirrors, PriorBeamsAreTheOnesAskedForByContent)
{
  write(source() / "lib/a.ex", "defmodule A do end\n");
  std::vector<PriorBeam> first = {{"Elixir.A.beam", "aaa", ""}, {"Elixir.B.beam", "bbb", ""}};
  {
    auto lent = lend(first);
    ASSERT_TRUE(lent.has_value()) << lent.error();
    EXPECT_EQ(contents(prior() / "beams"),
              (std::map<std::string, std::string>{{"Elixir.A.beam", "aaa"}, {"Elixir.B.beam", "bbb"}}));
  }
  EXPECT_TRUE(fs::is_empty(prior())); // given back by the destructor
  std::vector<PriorBeam> second = {{"Elixir.B.beam", "BBB", ""}, {"Elixir.C.beam", "ccc", ""}};
  auto lent = lend(second);
  ASSERT_TRUE(lent.has_value()) << lent.error();
  EXPECT_EQ(contents(prior() / "beams"),
            (std::map<std::string, std::string>{{"Elixir.B.beam", "BBB"}, {"Elixir.C.beam", "ccc"}}));
  lent->give_back();
  // No prior BEAMs: nothing at /prior.
  auto none = lend();
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(fs::is_empty(prior()));
}

TEST_F(SourceMirrors, ABadBeamNameOrAMissingSandboxIsAnErrorAndLeavesNothing)
{
  write(source() / "lib/a.ex", "defmodule A do end\n");
  auto bad = lend({{"../escape.beam", "x", ""}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().find("bad BEAM name"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(sandbox()));
  auto missing = lend_sources("/nonexistent", m_root / "nonexistent", sandbox(), prior(), {});
  EXPECT_FALSE(missing.has_value());
  EXPECT_TRUE(fs::is_empty(sandbox()));
}

TEST_F(SourceMirrors, WithoutMirrorsEveryJobGetsAFreshCopyAndNothingIsKept)
{
  disable_source_mirrors();
  write(source() / "lib/a.ex", "defmodule A do end\n");
  auto lent = lend({{"Elixir.B.beam", "bbb", ""}});
  ASSERT_TRUE(lent.has_value()) << lent.error();
  EXPECT_FALSE(lent->reused());
  EXPECT_EQ(contents(sandbox()), contents(source()));
  lent->give_back();
  EXPECT_TRUE(fs::is_empty(sandbox()));
  EXPECT_TRUE(fs::is_empty(prior()));
  EXPECT_EQ(mirror_roots(), 0u);
}

TEST_F(SourceMirrors, StoppingRemovesTheCopiesAndTheNextEngineRemovesThoseOfAKilledOne)
{
  write(source() / "lib/a.ex", "defmodule A do end\n");
  ASSERT_TRUE(lend().has_value());
  EXPECT_EQ(mirror_roots(), 1u);
  disable_source_mirrors();
  EXPECT_EQ(mirror_roots(), 0u);

  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  auto orphan = m_root / ("sandbox-mirrors-" + std::to_string(child) + "-abcdef");
  write(orphan / "1/src/lib/a.ex", "left behind\n");
  auto alive = m_root / ("sandbox-mirrors-" + std::to_string(::getppid()) + "-abcdef");
  fs::create_directories(alive);
  enable_source_mirrors();
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_TRUE(fs::exists(alive)); // its engine still runs
}

} // namespace

} // namespace sandbox::compiler
