// Acting as a caller: the per-thread credentials, the mirror of a caller's
// tree, staged files and outputs delivered as the caller. These run as root
// (they act as uid 65534) and skip otherwise.

#include "service/caller.h"
#include "service/caller_scope.h"
#include "util/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <gtest/gtest.h>
#include <optional>
#include <thread>

namespace sandbox::service {
namespace {

constexpr uid_t kNobody = 65534;

class CallerTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "acting as another user needs root";
    }
    auto dir = util::TempDir::create("/tmp", "caller-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
    ::chmod(root().c_str(), 0755);
    const char* state = std::getenv("SANDBOX_STATE_DIR");
    m_saved_state = state ? std::optional<std::string>(state) : std::nullopt;
    ::setenv("SANDBOX_STATE_DIR", (root() / "state").c_str(), 1);
    fs::create_directories(root() / "home" / "lib");
  }

  void TearDown() override
  {
    if (m_saved_state) {
      ::setenv("SANDBOX_STATE_DIR", m_saved_state->c_str(), 1);
    } else {
      ::unsetenv("SANDBOX_STATE_DIR");
    }
  }

  [[nodiscard]] fs::path root() const { return m_dir->path(); }
  [[nodiscard]] fs::path home() const { return root() / "home"; }
  static Caller nobody() { return Caller{kNobody, kNobody, 0, {}}; }

  static void write(const fs::path& path, const std::string& text, uid_t owner = kNobody, mode_t mode = 0644)
  {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    ::lchown(path.c_str(), owner, owner);
    ::chmod(path.c_str(), mode);
  }

  void give_home()
  {
    ::lchown(home().c_str(), kNobody, kNobody);
    for (const auto& entry : fs::recursive_directory_iterator(home())) {
      ::lchown(entry.path().c_str(), kNobody, kNobody);
    }
  }

private:
  std::optional<util::TempDir> m_dir;
  std::optional<std::string> m_saved_state;
};

TEST_F(CallerTest, ActingAsIsPerThreadAndRestored)
{
  write(root() / "private", "secret", 0, 0600);
  // A thread of the engine started before the switch (a new thread would
  // inherit the credentials of the thread that creates it).
  std::promise<void> acting_now;
  std::promise<bool> read_by_other;
  std::thread other([&] {
    acting_now.get_future().wait();
    read_by_other.set_value(util::read_file(root() / "private").has_value());
  });
  {
    ActingAs acting(nobody());
    ASSERT_TRUE(acting.active());
    EXPECT_FALSE(util::read_file(root() / "private")); // this thread is the caller
    acting_now.set_value();
    EXPECT_TRUE(read_by_other.get_future().get()); // the engine's other threads are not
  }
  other.join();
  EXPECT_TRUE(util::read_file(root() / "private")); // and this one is the engine again
}

TEST_F(CallerTest, MirrorFollowsEditsKeepsTheEnginesCacheAndCopiesLinksAsLinks)
{
  write(home() / "lib" / "a.ex", "defmodule A do\nend\n");
  write(home() / "lib" / "a.ex.sandbox-incoming", "not a staging file\n");
  write(home() / "gone.txt", "x");
  fs::create_symlink("/etc/passwd", home() / "link");
  give_home();
  auto first = Mirror::sync(nobody(), home().string());
  ASSERT_TRUE(first) << core::describe(first.error());
  auto tree = first->tree();
  EXPECT_EQ(*util::read_file(tree / "lib" / "a.ex"), "defmodule A do\nend\n");
  EXPECT_EQ(*util::read_file(tree / "lib" / "a.ex.sandbox-incoming"), "not a staging file\n");
  EXPECT_EQ(fs::read_symlink(tree / "link"), "/etc/passwd");
  EXPECT_EQ(first->source(), fs::canonical(home()));
  first = std::unexpected(core::InvalidOption{}); // the lock goes with it

  fs::create_directories(tree / ".sandbox_cache"); // the engine's, in the copy
  write(home() / "lib" / "a.ex", "defmodule A do\n  def x, do: 1\nend\n");
  fs::remove(home() / "gone.txt");
  auto second = Mirror::sync(nobody(), home().string());
  ASSERT_TRUE(second) << core::describe(second.error());
  EXPECT_EQ(*util::read_file(tree / "lib" / "a.ex"), "defmodule A do\n  def x, do: 1\nend\n");
  EXPECT_FALSE(fs::exists(tree / "gone.txt"));
  EXPECT_TRUE(fs::is_directory(tree / ".sandbox_cache"));
}

TEST_F(CallerTest, OnlyTheMostRecentlyUsedMirrorsAreKeptAndAHeldOneIsNeverRemoved)
{
  StageLimits limits;
  limits.max_mirrors = 2;
  std::vector<fs::path> trees;
  for (int i = 0; i < 4; ++i) {
    auto dir = root() / ("project" + std::to_string(i));
    write(dir / "lib" / "a.ex", "defmodule A do\nend\n");
    ::chown(dir.c_str(), kNobody, kNobody);
    ::chown((dir / "lib").c_str(), kNobody, kNobody);
    if (i == 0) {
      // Held by a request while the others come: it must survive the pruning.
      auto held = Mirror::sync(nobody(), dir.string(), limits);
      ASSERT_TRUE(held) << core::describe(held.error());
      trees.push_back(held->tree());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      for (int j = 1; j <= 3; ++j) {
        auto other = root() / ("other" + std::to_string(j));
        write(other / "lib" / "b.ex", "defmodule B do\nend\n");
        ::chown(other.c_str(), kNobody, kNobody);
        ::chown((other / "lib").c_str(), kNobody, kNobody);
        auto synced = Mirror::sync(nobody(), other.string(), limits);
        ASSERT_TRUE(synced) << core::describe(synced.error());
        trees.push_back(synced->tree());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_TRUE(fs::exists(trees[0] / "lib" / "a.ex")) << "a mirror in use was removed";
      EXPECT_FALSE(fs::exists(trees[1])) << "the least recently used free mirror was kept";
      EXPECT_TRUE(fs::exists(trees[3] / "lib" / "b.ex"));
      break;
    }
  }
  // Released now, the held mirror is the oldest: the next sync prunes it, and
  // syncing its tree again brings it back whole.
  auto again = Mirror::sync(nobody(), (root() / "other3").string(), limits);
  ASSERT_TRUE(again);
  EXPECT_FALSE(fs::exists(trees[0]));
  auto back = Mirror::sync(nobody(), (root() / "project0").string(), limits);
  ASSERT_TRUE(back) << core::describe(back.error());
  EXPECT_TRUE(fs::exists(back->tree() / "lib" / "a.ex"));
}

TEST_F(CallerTest, AFileTheCallerCanNoLongerReadIsRefusedEvenWhenTheCopyIsCurrent)
{
  write(home() / "lib" / "a.ex", "defmodule A do\nend\n");
  give_home();
  ASSERT_TRUE(Mirror::sync(nobody(), home().string()));
  ::lchown((home() / "lib" / "a.ex").c_str(), 0, 0);
  ::chmod((home() / "lib" / "a.ex").c_str(), 0600);
  auto refused = Mirror::sync(nobody(), home().string());
  ASSERT_FALSE(refused);
  const auto* denied = std::get_if<core::PermissionDenied>(&refused.error());
  ASSERT_NE(denied, nullptr) << core::describe(refused.error());
  EXPECT_EQ(denied->path, (home() / "lib" / "a.ex").string());
  EXPECT_EQ(denied->operation, "read");
}

TEST_F(CallerTest, OutputsAreTheCallersAndOnlyWhereItMayWrite)
{
  write(root() / "made" / "A.beam", "FOR1", 0);
  fs::create_directories(home() / "out");
  give_home();
  auto delivered = deliver_files(nobody(), {root() / "made" / "A.beam"}, (home() / "out").string());
  ASSERT_TRUE(delivered) << core::describe(delivered.error());
  struct stat st {};
  ASSERT_EQ(::stat((home() / "out" / "A.beam").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
  fs::create_directories(root() / "engine_only");
  auto refused = deliver_files(nobody(), {root() / "made" / "A.beam"}, (root() / "engine_only").string());
  ASSERT_FALSE(refused);
  EXPECT_NE(std::get_if<core::PermissionDenied>(&refused.error()), nullptr);
  EXPECT_FALSE(fs::exists(root() / "engine_only" / "A.beam"));
  // A link planted where the output goes is not followed.
  fs::create_symlink(root() / "engine_only" / "B.beam", home() / "out" / "B.beam");
  ::lchown((home() / "out" / "B.beam").c_str(), kNobody, kNobody);
  write(root() / "made" / "B.beam", "FOR1", 0);
  EXPECT_FALSE(deliver_files(nobody(), {root() / "made" / "B.beam"}, (home() / "out").string()));
  EXPECT_FALSE(fs::exists(root() / "engine_only" / "B.beam"));
}

TEST_F(CallerTest, ScopeRenamesStagedPathsBackToTheCallers)
{
  write(home() / "x.beam", "FOR1");
  give_home();
  CallerScope scope(nobody());
  ASSERT_TRUE(scope.acting());
  auto staged = scope.file((home() / "x.beam").string());
  EXPECT_NE(staged, home() / "x.beam");
  EXPECT_EQ(*util::read_file(staged), "FOR1");
  auto answer = scope.finish({{"ok", true}, {"file", staged.string()}, {"note", "read " + staged.string()}});
  EXPECT_EQ(answer["file"], (home() / "x.beam").string());
  EXPECT_EQ(answer["note"], "read " + (home() / "x.beam").string());
  CallerScope engine(Caller::of_process());
  EXPECT_FALSE(engine.acting());
  EXPECT_EQ(engine.file((home() / "x.beam").string()), home() / "x.beam");
}

} // namespace
} // namespace sandbox::service
