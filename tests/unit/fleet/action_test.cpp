// The fleet's data: trees as digests, envelopes under the fleet key, paths a
// node accepts from the store, placeholders, Redis URLs.

#include "fleet/action.h"
#include "fleet/redis.h"
#include "util/fs.h"
#include "util/hash.h"

#include <gtest/gtest.h>

#include <fstream>

namespace sandbox::fleet {
namespace {

class FleetData : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto made = util::TempDir::create(util::default_temp_root(), "fleet-unit-");
    ASSERT_TRUE(made);
    m_dir.emplace(std::move(*made));
  }
  [[nodiscard]] const fs::path& dir() const { return m_dir->path(); }
  void write(const fs::path& relative, const std::string& text) const
  {
    fs::create_directories((dir() / relative).parent_path());
    std::ofstream(dir() / relative) << text;
  }

private:
  std::optional<util::TempDir> m_dir;
};

TEST(FleetPaths, OnlyPlainRelativePathsAreAccepted)
{
  for (const char* good : {"a", "lib/a.ex", "deep/er/x.beam", ".formatter.exs", "a..b"}) {
    EXPECT_TRUE(safe_relative_path(good)) << good;
  }
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a/", ".", ".."}) {
    EXPECT_FALSE(safe_relative_path(bad)) << bad;
  }
  EXPECT_FALSE(safe_relative_path(std::string("a\0b", 3)));
  EXPECT_FALSE(safe_relative_path(std::string(256, 'x')));
}

TEST(FleetEnvelopes, OnlyTheSameKeyNamespaceKindAndNameOpenThem)
{
  auto sealed = seal("key-one-0123456789", "ns", "ac", "abc", "{\"x\":1}");
  auto opened = unseal("key-one-0123456789", "ns", "ac", "abc", sealed);
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, "{\"x\":1}");
  EXPECT_FALSE(unseal("key-two-0123456789", "ns", "ac", "abc", sealed));
  EXPECT_FALSE(unseal("key-one-0123456789", "other", "ac", "abc", sealed));
  EXPECT_FALSE(unseal("key-one-0123456789", "ns", "job", "abc", sealed));
  EXPECT_FALSE(unseal("key-one-0123456789", "ns", "ac", "abd", sealed));
  auto changed = sealed;
  changed.back() = '2';
  EXPECT_FALSE(unseal("key-one-0123456789", "ns", "ac", "abc", changed));
  EXPECT_FALSE(unseal("key-one-0123456789", "ns", "ac", "abc", sealed.substr(0, 40)));
  EXPECT_FALSE(unseal("key-one-0123456789", "ns", "ac", "abc", "garbage"));
}

TEST_F(FleetData, ATreeTravelsAsDigestsAndIsWrittenBackChecked)
{
  write("lib/a.ex", "defmodule A do end\n");
  write("lib/b.ex", "defmodule B do end\n");
  write("same/a.ex", "defmodule A do end\n");
  fs::create_directories(dir() / "priv" / "empty");
  std::map<std::string, std::string> blobs;
  auto tree = read_tree(dir(), blobs);
  ASSERT_TRUE(tree) << tree.error();
  EXPECT_EQ(blobs.size(), 2u); // the same content once
  auto round = tree_from_json(tree_to_json(*tree));
  ASSERT_TRUE(round) << round.error();
  EXPECT_EQ(tree_to_json(*round), tree_to_json(*tree));

  auto target = dir() / "out";
  fs::create_directory(target);
  auto inner = util::TempDir::create(util::default_temp_root(), "fleet-unit-out-");
  ASSERT_TRUE(inner);
  ASSERT_TRUE(write_tree(*round, blobs, inner->path()));
  EXPECT_EQ(*util::read_file(inner->path() / "lib/b.ex"), "defmodule B do end\n");
  EXPECT_TRUE(fs::is_directory(inner->path() / "priv" / "empty"));

  // A blob that does not match its digest is never written.
  auto bad = blobs;
  bad.begin()->second += "tampered";
  auto other = util::TempDir::create(util::default_temp_root(), "fleet-unit-bad-");
  ASSERT_TRUE(other);
  auto written = write_tree(*round, bad, other->path());
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().find("digest"), std::string::npos);
}

TEST_F(FleetData, ALinkOrAnOversizedTreeStaysOnTheNode)
{
  write("lib/a.ex", "x");
  fs::create_symlink("/etc/passwd", dir() / "lib" / "secret");
  std::map<std::string, std::string> blobs;
  auto tree = read_tree(dir(), blobs);
  ASSERT_FALSE(tree);
  EXPECT_NE(tree.error().find("symlink"), std::string::npos);
}

TEST(FleetTrees, MalformedEntriesFromTheStoreAreRefused)
{
  using nlohmann::json;
  std::string digest(64, 'a');
  EXPECT_TRUE(tree_from_json(json::array({json::array({"lib/a.ex", "f", digest, 3})})));
  EXPECT_FALSE(tree_from_json(json::array({json::array({"../a.ex", "f", digest, 3})})));
  EXPECT_FALSE(tree_from_json(json::array({json::array({"/abs", "f", digest, 3})})));
  EXPECT_FALSE(tree_from_json(json::array({json::array({"a", "l", digest, 3})})));
  EXPECT_FALSE(tree_from_json(json::array({json::array({"a", "f", "notadigest", 3})})));
  EXPECT_FALSE(tree_from_json(json::array({json::array({"a", "f", digest, kMaxBlobBytes + 1})})));
  EXPECT_FALSE(tree_from_json(json::object()));
  EXPECT_FALSE(tree_from_json(json::array({"a"})));
}

TEST(FleetPlaceholders, EveryOccurrenceInEveryStringIsReplaced)
{
  nlohmann::json value = {{"temp_dir", "/tmp/x"},
                          {"beam_files", {"/tmp/x/ebin/A.beam", "/tmp/xy/B.beam"}},
                          {"output", "wrote /tmp/x/a and /tmp/x/b"},
                          {"n", 3}};
  replace_in_strings(value, "/tmp/x", kTempToken);
  EXPECT_EQ(value["temp_dir"], std::string(kTempToken));
  EXPECT_EQ(value["beam_files"][0], std::string(kTempToken) + "/ebin/A.beam");
  EXPECT_EQ(value["output"], "wrote " + std::string(kTempToken) + "/a and " + std::string(kTempToken) + "/b");
  replace_in_strings(value, kTempToken, "/srv/y");
  EXPECT_EQ(value["beam_files"][0], "/srv/y/ebin/A.beam");
  EXPECT_EQ(value["n"], 3);
}

TEST(FleetUrls, TcpAndUnixUrlsAreParsedAndBadOnesExplained)
{
  auto tcp = parse_redis_url("redis://cache.internal:6380/2");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->host, "cache.internal");
  EXPECT_EQ(tcp->port, 6380);
  EXPECT_EQ(tcp->db, 2);
  auto plain = parse_redis_url("redis://10.0.0.5");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 6379);
  EXPECT_EQ(plain->db, 0);
  auto local = parse_redis_url("redis+unix:///run/redis/redis.sock?db=3");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(local->db, 3);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x",
                          "redis+unix://relative", "redis+unix:///s?x=1", "redis://user:pw@h"}) {
    EXPECT_FALSE(parse_redis_url(bad)) << bad;
  }
}

} // namespace
} // namespace sandbox::fleet
