#include "incremental/tree_stamps.h"
#include "incremental/tree_watch.h"
#include "util/fs.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>

namespace sandbox::incremental {
namespace {

// What a stamp says about content: the stat fields differ between two
// stampings of the same file only when it was touched.
std::map<std::string, std::pair<std::string, std::uint64_t>> contents(const TreeStamps& stamps)
{
  std::map<std::string, std::pair<std::string, std::uint64_t>> out;
  for (const auto& [path, stamp] : stamps) out[path] = {stamp.sha256, stamp.size};
  return out;
}

class TreeWatch : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create("/tmp", "watch-unit-");
    ASSERT_TRUE(dir);
    m_dir.emplace(std::move(*dir));
    root = fs::canonical(m_dir->path());
    TreeWatcher::instance().enable(64, 1000);
  }
  void TearDown() override { TreeWatcher::instance().disable(); }

  void write(const std::string& relative, const std::string& text)
  {
    fs::create_directories((root / relative).parent_path());
    std::ofstream(root / relative, std::ios::trunc) << text;
  }

  fs::path root;

private:
  std::optional<util::TempDir> m_dir;
};

TEST_F(TreeWatch, FirstLookIsUnknownThenEachChangeIsNamed)
{
  write("lib/a.ex", "a");
  write("lib/b.ex", "b");
  EXPECT_FALSE(TreeWatcher::instance().changes(root, WatchConsumer::stamps));
  auto none = TreeWatcher::instance().changes(root, WatchConsumer::stamps);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  write("lib/a.ex", "A"); // same size, same second
  fs::remove(root / "lib/b.ex");
  write("lib/new/c.ex", "c");
  auto some = TreeWatcher::instance().changes(root, WatchConsumer::stamps);
  ASSERT_TRUE(some);
  EXPECT_TRUE(some->contains("lib/a.ex"));
  EXPECT_TRUE(some->contains("lib/b.ex"));
  EXPECT_TRUE(some->contains("lib/new"));
  // The other consumer has not looked yet: unknown for it, once.
  EXPECT_FALSE(TreeWatcher::instance().changes(root, WatchConsumer::scan));
  write("lib/new/c.ex", "cc"); // inside the directory created above: watched now
  auto later = TreeWatcher::instance().changes(root, WatchConsumer::scan);
  ASSERT_TRUE(later);
  EXPECT_EQ(*later, std::set<std::string>{"lib/new/c.ex"});
  auto status = TreeWatcher::instance().status();
  EXPECT_EQ(status.trees, 1u);
  EXPECT_EQ(status.watches, 3u); // the root, lib, lib/new
}

TEST_F(TreeWatch, ATreeWithMoreDirectoriesThanTheCapIsNotWatched)
{
  TreeWatcher::instance().enable(64, 2);
  write("a/b/c/d.ex", "d");
  EXPECT_FALSE(TreeWatcher::instance().changes(root, WatchConsumer::stamps));
  EXPECT_FALSE(TreeWatcher::instance().changes(root, WatchConsumer::stamps));
  auto status = TreeWatcher::instance().status();
  EXPECT_EQ(status.trees, 0u);
  EXPECT_EQ(status.fallbacks, 1u);
  EXPECT_EQ(status.watches, 0u);
}

TEST_F(TreeWatch, TheRootRemovedIsUnknown)
{
  write("a.ex", "a");
  auto inner = root / "inner";
  fs::create_directories(inner);
  std::ofstream(inner / "x.ex") << "x";
  EXPECT_FALSE(TreeWatcher::instance().changes(inner, WatchConsumer::stamps));
  ASSERT_TRUE(TreeWatcher::instance().changes(inner, WatchConsumer::stamps));
  fs::rename(inner, root / "moved");
  EXPECT_FALSE(TreeWatcher::instance().changes(inner, WatchConsumer::stamps));
}

TEST_F(TreeWatch, OffItKnowsNothing)
{
  TreeWatcher::instance().disable();
  EXPECT_FALSE(TreeWatcher::instance().changes(root, WatchConsumer::stamps));
  EXPECT_FALSE(TreeWatcher::instance().changes(root, WatchConsumer::stamps));
  EXPECT_FALSE(TreeWatcher::instance().status().enabled);
}

// Random edits, renames, deletions, new and removed directories, links: the
// stamps patched with what the watch names equal a fresh stamping every time.
TEST_F(TreeWatch, PatchedStampsEqualAFreshStampingAfterRandomChanges)
{
  std::mt19937 random(20261203);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  auto name = [&] { return "d" + std::to_string(pick(4)) + "/f" + std::to_string(pick(6)) + ".ex"; };
  for (int i = 0; i < 12; ++i) write(name(), std::to_string(i));
  bool watched = false;
  auto base = stamp_tree_watched(root, {}, 0, &watched);
  ASSERT_TRUE(base);
  EXPECT_FALSE(watched);
  for (int round = 0; round < 40; ++round) {
    for (int op = 0; op < 3; ++op) {
      switch (pick(7)) {
      case 0: write(name(), "edit" + std::to_string(pick(10))); break; // often the same size
      case 1: fs::remove(root / name()); break;
      case 2: {
        std::error_code ec;
        fs::rename(root / name(), root / name(), ec);
        break;
      }
      case 3: {
        std::error_code ec;
        auto dir = "d" + std::to_string(pick(4));
        fs::rename(root / dir, root / ("d" + std::to_string(pick(4))), ec);
        break;
      }
      case 4: fs::remove_all(root / ("d" + std::to_string(pick(4)))); break;
      case 5: {
        std::error_code ec;
        fs::create_symlink("f" + std::to_string(pick(6)) + ".ex", root / name(), ec);
        break;
      }
      default: ::chmod((root / name()).c_str(), 0600); break;
      }
    }
    auto now = stamp_tree_watched(root, {}, 0, &watched);
    ASSERT_TRUE(now);
    EXPECT_TRUE(watched) << "round " << round;
    auto fresh = stamp_tree(root);
    ASSERT_TRUE(fresh);
    ASSERT_EQ(contents(*now), contents(*fresh)) << "round " << round;
  }
}

TEST_F(TreeWatch, AFileWithAnotherNameOutsideTheTreeIsLookedAtEveryTime)
{
  auto outside = util::TempDir::create("/tmp", "watch-unit-outside-");
  ASSERT_TRUE(outside);
  std::ofstream(outside->path() / "shared.ex") << "one";
  ASSERT_EQ(::link((outside->path() / "shared.ex").c_str(), (root / "shared.ex").c_str()), 0);
  ASSERT_TRUE(stamp_tree_watched(root, {}, 0));
  auto before = stamp_tree_watched(root, {}, 0);
  ASSERT_TRUE(before);
  std::ofstream(outside->path() / "shared.ex", std::ios::trunc) << "two";
  bool watched = false;
  auto after = stamp_tree_watched(root, {}, 0, &watched);
  ASSERT_TRUE(after);
  EXPECT_TRUE(watched);
  EXPECT_NE(after->at("shared.ex").sha256, before->at("shared.ex").sha256);
}

} // namespace
} // namespace sandbox::incremental
