// cache_stats.json: what each kind of compile counts and the rates derived.

#include "compiler/cache_stats.h"
#include "util/fs.h"

#include <gtest/gtest.h>

namespace sandbox::compiler {

namespace {

TEST(CacheStats, EachCompileCountsOnceAndFailuresApart)
{
  auto root = util::TempDir::create("/tmp", "cache-stats-test-");
  ASSERT_TRUE(root) << root.error();
  auto sandbox = root->path() / "sb";
  std::filesystem::create_directories(sandbox);
  std::vector<std::string> warnings;
  auto dir = incremental::CacheDir::open(sandbox, root->path() / "state", true, warnings);
  ASSERT_TRUE(dir) << dir.error();
  std::string key(32, 'k');
  auto record = [&](const std::string& strategy, std::int64_t ms, bool failed) {
    record_stats(*dir, key, load_stats(*dir, key, warnings), strategy, ms, failed, warnings);
  };
  record("full", 300, false);
  record("cache_hit", 10, false);
  record("incremental", 50, false);
  record("", 0, true);
  EXPECT_TRUE(warnings.empty());
  auto stats = stats_json(load_stats(*dir, key, warnings));
  EXPECT_EQ(stats["total_compilations"], 3);
  EXPECT_EQ(stats["full_compilations"], 1);
  EXPECT_EQ(stats["cache_hits"], 1);
  EXPECT_EQ(stats["incremental_compilations"], 2); // the hit counts too
  EXPECT_EQ(stats["failed_compilations"], 1);
  EXPECT_EQ(stats["total_compilation_time"], 360);
  EXPECT_EQ(stats["average_compilation_time"], 120);
  EXPECT_DOUBLE_EQ(stats["cache_hit_rate"].get<double>(), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(stats["incremental_rate"].get<double>(), 2.0 / 3.0);
}

TEST(CacheStats, NoCompilesMeansZeroRates)
{
  auto stats = stats_json({});
  EXPECT_EQ(stats["average_compilation_time"], 0);
  EXPECT_EQ(stats["cache_hit_rate"], 0.0);
}

} // namespace

} // namespace sandbox::compiler
