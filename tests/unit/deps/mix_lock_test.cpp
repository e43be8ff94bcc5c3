#include "deps/mix_lock.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <string>

namespace sandbox::deps {

namespace {

const std::string decimal_inner =
    "5611dca5d4b2c3dd497dec8f68751f1f1a54755e8ed2a966c2633cf885973ad6";
const std::string decimal_outer =
    "53cfe5f497ed0e7771ae1a475575603d77425099ba5faef9394932b35020ffcc";
const std::string jason_inner = "b9226785a9aa77b6857ca22832cffa5d5011a667207eb2a0ad56adb5db443b8a";
const std::string jason_outer = "c5eb0cab91f094599f94d55bc63409236a8ec69a21a67814529e8d5f6cc90b3b";
const std::string old_inner = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const std::string example_lock =
    R"(%{
  "decimal": {:hex, :decimal, "2.1.1", ")" +
    decimal_inner + R"(", [:mix], [], "hexpm", ")" + decimal_outer + R"("},
  "jason": {:hex, :jason, "1.4.4", ")" +
    jason_inner +
    R"(", [:mix], [{:decimal, "~> 1.0 or ~> 2.0", [hex: :decimal, repo: "hexpm", optional: true]}], "hexpm", ")" +
    jason_outer + R"("},
  "plug": {:git, "https://github.com/elixir-plug/plug.git", "abc123", []},
  "old": {:hex, :old, "0.1.0", "0123456789ABCDEF0123456789ABCDEF0123456789abcdef0123456789ABCDEF", [:mix, :rebar3], [], "hexpm"},
}
)";

// A lock of one hex entry whose tuple is `tuple`.
std::string one_entry(const std::string& tuple)
{
  return "%{\n  \"pkg\": " + tuple + ",\n}\n";
}

std::string hex_tuple(const std::string& package = ":pkg", const std::string& version = "\"1.0.0\"",
                      const std::string& inner = "\"" + old_inner + "\"",
                      const std::string& requirements = "[]")
{
  return "{:hex, " + package + ", " + version + ", " + inner + ", [:mix], " + requirements +
         ", \"hexpm\", \"" + old_inner + "\"}";
}

void expect_error(const std::string& text, const std::string& fragment)
{
  auto lock = parse_mix_lock(text);
  ASSERT_FALSE(lock) << "accepted: " << text.substr(0, 200);
  EXPECT_NE(lock.error().find(fragment), std::string::npos)
      << "error: " << lock.error() << "\nwanted: " << fragment;
}

TEST(MixLockTest, ReadsTheExampleLock)
{
  auto lock = parse_mix_lock(example_lock);
  ASSERT_TRUE(lock) << lock.error();
  ASSERT_EQ(lock->hex.size(), 3u);
  ASSERT_EQ(lock->other.size(), 1u);
  EXPECT_EQ(lock->other.at("plug"), "git");

  const auto& decimal = lock->hex.at("decimal");
  EXPECT_EQ(decimal.app, "decimal");
  EXPECT_EQ(decimal.package, "decimal");
  EXPECT_EQ(decimal.version, "2.1.1");
  EXPECT_EQ(decimal.inner_checksum, decimal_inner);
  EXPECT_EQ(decimal.outer_checksum, decimal_outer);
  EXPECT_EQ(decimal.managers, std::vector<std::string>{"mix"});
  EXPECT_TRUE(decimal.requirements.empty());
  EXPECT_EQ(decimal.repo, "hexpm");

  const auto& jason = lock->hex.at("jason");
  EXPECT_EQ(jason.version, "1.4.4");
  EXPECT_EQ(jason.outer_checksum, jason_outer);
  ASSERT_EQ(jason.requirements.size(), 1u);
  const auto& requirement = jason.requirements[0];
  EXPECT_EQ(requirement.app, "decimal");
  EXPECT_EQ(requirement.package, "decimal");
  EXPECT_EQ(requirement.requirement, "~> 1.0 or ~> 2.0");
  EXPECT_EQ(requirement.repo, "hexpm");
  EXPECT_TRUE(requirement.optional);
}

TEST(MixLockTest, SevenElementFormHasNoOuterChecksumAndLowerCasesTheInner)
{
  auto lock = parse_mix_lock(example_lock);
  ASSERT_TRUE(lock) << lock.error();
  const auto& old = lock->hex.at("old");
  EXPECT_EQ(old.package, "old");
  EXPECT_EQ(old.inner_checksum, old_inner);
  EXPECT_TRUE(old.outer_checksum.empty());
  EXPECT_EQ(old.managers, (std::vector<std::string>{"mix", "rebar3"}));
  EXPECT_EQ(old.repo, "hexpm");
}

TEST(MixLockTest, UpperCaseOuterChecksumIsLowerCased)
{
  std::string upper = decimal_outer;
  for (auto& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  auto lock = parse_mix_lock(one_entry("{:hex, :pkg, \"1.0.0\", \"" + old_inner +
                                       "\", [:mix], [], \"hexpm\", \"" + upper + "\"}"));
  ASSERT_TRUE(lock) << lock.error();
  EXPECT_EQ(lock->hex.at("pkg").outer_checksum, decimal_outer);
}

TEST(MixLockTest, AppKeyMayDifferFromThePackage)
{
  auto lock = parse_mix_lock(one_entry(hex_tuple(":pkg_core")));
  ASSERT_TRUE(lock) << lock.error();
  EXPECT_EQ(lock->hex.at("pkg").app, "pkg");
  EXPECT_EQ(lock->hex.at("pkg").package, "pkg_core");
}

TEST(MixLockTest, RequirementDefaultsAndVariants)
{
  auto lock = parse_mix_lock(one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"" + old_inner + "\"",
                                                 R"([
      {:plain, "~> 1.0", []},
      {:renamed, ">= 0.0.0", [hex: :real_name]},
      {:private, "~> 2.0", [hex: :private, repo: "hexpm:acme", optional: false]},
      {:loose, nil, [optional: true, only: :test]},
      {:quoted, "~> 1.0", ["hex": :quoted, "repo": "hexpm"]},
    ])")));
  ASSERT_TRUE(lock) << lock.error();
  const auto& reqs = lock->hex.at("pkg").requirements;
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[0].app, "plain");
  EXPECT_EQ(reqs[0].package, "plain");
  EXPECT_EQ(reqs[0].repo, "hexpm");
  EXPECT_FALSE(reqs[0].optional);
  EXPECT_EQ(reqs[1].app, "renamed");
  EXPECT_EQ(reqs[1].package, "real_name");
  EXPECT_EQ(reqs[2].repo, "hexpm:acme");
  EXPECT_FALSE(reqs[2].optional);
  EXPECT_EQ(reqs[3].requirement, "");
  EXPECT_TRUE(reqs[3].optional);
  EXPECT_EQ(reqs[4].package, "quoted");
}

TEST(MixLockTest, CommentsArrowKeysAndNoTrailingComma)
{
  std::string text = "# generated\n%{ # the map\n  \"a\" => " + hex_tuple(":a") +
                     ", # first\n  \"b\": {:path, \"../b\", []}\n# last\n}\n# done";
  auto lock = parse_mix_lock(text);
  ASSERT_TRUE(lock) << lock.error();
  EXPECT_EQ(lock->hex.at("a").package, "a");
  EXPECT_EQ(lock->other.at("b"), "path");
}

TEST(MixLockTest, EmptyLocks)
{
  for (const std::string text : {"", "  \n# nothing\n", "%{}", "%{\n}\n"}) {
    auto lock = parse_mix_lock(text);
    ASSERT_TRUE(lock) << text << ": " << lock.error();
    EXPECT_TRUE(lock->hex.empty());
    EXPECT_TRUE(lock->other.empty());
  }
}

TEST(MixLockTest, StringEscapesAndQuotedAtoms)
{
  auto lock =
      parse_mix_lock(one_entry("{:git, \"https://example.org/a\\\"b\\\\c\\n\\t\\#d\", \"ref\", "
                               "[branch: :\"quoted-atom\", n: 42, neg: -1, big: 1_000]}"));
  ASSERT_TRUE(lock) << lock.error();
  EXPECT_EQ(lock->other.at("pkg"), "git");
}

TEST(MixLockTest, RefusesCode)
{
  expect_error(one_entry("System.cmd(\"rm\", [\"-rf\", \"/\"])"), "line 2: unexpected `System`");
  expect_error("System.cmd(\"id\", [])", "line 1");
  expect_error(one_entry("{:hex, File.read!(\"/etc/passwd\")}"), "unexpected `File`");
  expect_error(one_entry("{:hex, :pkg, x}"), "unexpected `x`");
  expect_error(one_entry("{:hex, :pkg, ~s(1.0)}"), "sigil");
  expect_error(one_entry("{:hex, :pkg, <<1, 2>>}"), "<<");
  expect_error(one_entry("{:hex, :pkg, &foo/1}"), "unexpected `&`");
  expect_error(one_entry("{:hex, :pkg, fn -> 1 end}"), "unexpected `fn`");
  expect_error(one_entry("{:hex, :pkg, %Struct{}}"), "only literal maps");
  expect_error(one_entry("{:hex, :pkg, @attr}"), "unexpected `@`");
  expect_error("%{} |> Map.put(:a, 1)", "expected the end of the lock");
  expect_error("<<<<<<< HEAD\n%{}\n=======\n%{}\n>>>>>>> x\n", "expected the lock's map");
}

TEST(MixLockTest, RefusesInterpolation)
{
  expect_error(one_entry("{:git, \"#{System.cmd(\\\"id\\\", [])}\", \"r\", []}"), "interpolation");
  expect_error(one_entry("{:git, \"a\\#{b}\", \"r\", []}"), "interpolation");
  expect_error(one_entry("{:git, :\"#{x}\", \"r\", []}"), "interpolation");
}

TEST(MixLockTest, RefusesMalformedText)
{
  expect_error("%{\n  \"pkg\": {:git, \"unterminated, []}\n}\n", "line 2: unterminated string");
  expect_error("%{\n  \"pkg\": {:git, \"a\", []}\n",
               "expected `}` to close a map opened on line 1");
  expect_error(one_entry("{:git, \"a\" \"b\"}"), "expected `,` or `}` in a tuple");
  expect_error(one_entry("{:git, \"\"\"\nheredoc\n\"\"\"}"), "heredoc");
  expect_error(one_entry("{:git, \"\\x41\"}"), "unsupported escape");
  expect_error(one_entry("{:git, 1.5}"), "expected an integer");
  expect_error(one_entry("{:git, [a: 1, 2]}"), "expected a keyword");
  expect_error("%{\"a\" 1}", "expected `=>` after a map key");
  expect_error("%{\n\n  \"a\": {:git, :b\x01}}",
               "line 3: expected `,` or `}` in a tuple, found byte 0x01");
}

TEST(MixLockTest, NonUtf8BytesAreHandled)
{
  std::string text = one_entry("{:git, \"\xff\xfe\x80\", \"r\", []}");
  auto lock = parse_mix_lock(text);
  ASSERT_TRUE(lock) << lock.error();
  EXPECT_EQ(lock->other.at("pkg"), "git");
  expect_error("%{\xc3\x28: 1}", "byte 0xc3");
  std::string garbage;
  for (int i = 0; i < 4096; ++i) {
    garbage.push_back(static_cast<char>((i * 7919) & 0xff));
  }
  EXPECT_FALSE(parse_mix_lock(garbage));
}

TEST(MixLockTest, RefusesDeepNestingAndHugeInput)
{
  std::string deep = one_entry(std::string(100, '[') + std::string(100, ']'));
  expect_error(deep, "nesting deeper than 64 levels");
  std::string fine = one_entry("{:git, " + std::string(40, '[') + std::string(40, ']') + "}");
  EXPECT_TRUE(parse_mix_lock(fine));
  std::string huge = "%{\n" + std::string(5u << 20, ' ') + "}";
  expect_error(huge, "larger than");
}

TEST(MixLockTest, RefusesBadEntries)
{
  expect_error(one_entry(hex_tuple(":Pkg")), "valid package name");
  expect_error(one_entry(hex_tuple(":\"../evil\"")), "valid package name");
  expect_error(one_entry(hex_tuple(":pkg", "\"1.0.0; rm\"")), "the version must be");
  expect_error(one_entry(hex_tuple(":pkg", "\"\"")), "the version must be");
  expect_error(one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"abc\"")), "inner checksum");
  expect_error(one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"" + std::string(64, 'g') + "\"")),
               "inner checksum");
  expect_error(
      one_entry("{:hex, :pkg, \"1.0.0\", \"" + old_inner + "\", [:mix], [], \"hexpm\", \"xyz\"}"),
      "outer checksum");
  expect_error(one_entry("{:hex, :pkg, \"1.0.0\", \"" + old_inner + "\"}"), "7 or 8 elements");
  expect_error(one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"" + old_inner + "\"",
                                   "[{:Bad, \"~> 1.0\", []}]")),
               "requirement's app");
  expect_error(one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"" + old_inner + "\"",
                                   "[{:ok, \"~> 1.0\", [hex: :\"bad name\"]}]")),
               "`hex:` of ok");
  expect_error(one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"" + old_inner + "\"",
                                   "[{:ok, \"~> 1.0\", [optional: :yes]}]")),
               "`optional:` of ok");
  expect_error(
      one_entry(hex_tuple(":pkg", "\"1.0.0\"", "\"" + old_inner + "\"", "[{:ok, \"~> 1.0\"}]")),
      "{:app, requirement, options}");
  expect_error("%{\"Bad\": {:git, \"x\", []}}", "valid app name");
  expect_error("%{\"a\": {:git, \"x\", []}, a: {:git, \"y\", []}}", "locked twice");
  expect_error("%{\"a\" => {:git, \"x\", []}, \"a\": {:git, \"y\", []}}", "locked twice");
  expect_error("%{\"a\": \"not a tuple\"}", "tuple starting with an atom");
}

// The shared corpora's locks (real projects), when they are there.
TEST(MixLockTest, ReadsRealLocks)
{
  namespace fs = std::filesystem;
  fs::path corpora = fs::path(SANDBOX_SOURCE_DIR).parent_path() / "shared" / "corpora";
  if (const char* env = std::getenv("SANDBOX_CORPORA"); env != nullptr && *env != '\0') {
    corpora = env;
  }
  std::error_code ec;
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(corpora, ec)) {
    auto path = entry.path() / "mix.lock";
    if (!fs::is_regular_file(path)) {
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    auto lock = parse_mix_lock(text.str());
    ASSERT_TRUE(lock) << path << ": " << lock.error();
    EXPECT_FALSE(lock->hex.empty()) << path;
    for (const auto& [app, hex] : lock->hex) {
      EXPECT_EQ(hex.inner_checksum.size(), 64u) << app;
      EXPECT_EQ(hex.outer_checksum.size(), 64u) << app;
    }
    ++seen;
  }
  if (seen == 0) {
    GTEST_SKIP() << "no corpora with a mix.lock under " << corpora;
  }
}

} // namespace

} // namespace sandbox::deps
