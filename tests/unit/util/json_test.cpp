#include "util/json.h"

#include <gtest/gtest.h>

#include <random>

namespace sandbox::util {

namespace {

using nlohmann::json;
using namespace std::string_literals;

// What nlohmann::json itself accepts as UTF-8 when dumping strictly.
bool json_accepts(const std::string& bytes)
{
  try {
    (void)json(bytes).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

// escape -> JSON text -> parse -> unescape gives the bytes back.
void expect_round_trip(const std::string& bytes)
{
  SCOPED_TRACE(::testing::PrintToString(bytes));
  auto escaped = escape_bytes(bytes);
  EXPECT_TRUE(valid_utf8(escaped));
  std::string text;
  ASSERT_NO_THROW(text = json(escaped).dump());
  auto back = unescape_bytes(json::parse(text).get<std::string>());
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, bytes);
}

TEST(Json, ValidUtf8NamesAreUnchanged)
{
  for (const auto& name : {"lib/a.ex"s, ""s, "lib/caf\xc3\xa9.ex"s, "\xf0\x9f\x98\x80.txt"s, "a b\tc"s,
                           "\xef\xbf\xbf"s, "\xf4\x8f\xbf\xbf"s}) {
    EXPECT_EQ(escape_bytes(name), name);
    EXPECT_EQ(*unescape_bytes(name), name);
  }
}

TEST(Json, NamesThatLookLikeEscapesAreUnchangedAndNotConfused)
{
  // A valid name spelling out an escape is kept as it is; the escaped form of
  // the invalid name is different (it starts with NUL, which no name holds).
  auto looks_escaped = "lib/caf\\xe9.ex"s;
  auto invalid = "lib/caf\xe9.ex"s;
  EXPECT_EQ(escape_bytes(looks_escaped), looks_escaped);
  EXPECT_EQ(escape_bytes(invalid), "\0lib/caf\\xe9.ex"s);
  EXPECT_NE(escape_bytes(looks_escaped), escape_bytes(invalid));
  EXPECT_EQ(*unescape_bytes(looks_escaped), looks_escaped);
  EXPECT_EQ(*unescape_bytes(escape_bytes(invalid)), invalid);
  // Backslashes in an invalid name are doubled, so they cannot pose as escapes.
  EXPECT_EQ(escape_bytes("a\\xe9\xe9"s), "\0a\\\\xe9\\xe9"s);
  for (const auto& name : {"\\"s, "\\\\"s, "\\x"s, "\\x0"s, "x\\xzz"s}) {
    EXPECT_EQ(escape_bytes(name), name);
    expect_round_trip(name);
    expect_round_trip(name + "\xff");
  }
}

TEST(Json, InvalidUtf8AndNulLeadingStringsRoundTrip)
{
  for (const auto& bytes : {"lib/caf\xe9.ex"s, "\xff"s, "\xc0\xaf"s /* overlong */,
                            "\xed\xa0\x80"s /* surrogate */, "\xf4\x90\x80\x80"s /* > U+10FFFF */,
                            "\xe2\x82"s /* truncated */, "\x80"s, "caf\xc3\xa9\xff"s, "\0"s, "\0abc"s,
                            "\0\\xe9"s, "a\0\xff"s, "\xff\0"s}) {
    expect_round_trip(bytes);
    EXPECT_NE(escape_bytes(bytes), bytes);
  }
  // Valid sequences inside an escaped name stay readable.
  EXPECT_EQ(escape_bytes("caf\xc3\xa9\xff"s), "\0caf\xc3\xa9\\xff"s);
}

// unescape(escape(x)) == x for every x also means no two byte strings share
// an escaped form.
TEST(Json, EveryShortByteStringRoundTrips)
{
  auto check = [&](const std::string& bytes) {
    EXPECT_EQ(valid_utf8(bytes), json_accepts(bytes)) << ::testing::PrintToString(bytes);
    auto back = unescape_bytes(escape_bytes(bytes));
    ASSERT_TRUE(back) << back.error();
    ASSERT_EQ(*back, bytes);
  };
  for (int a = 0; a < 256; ++a) {
    check(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) {
      check(std::string{static_cast<char>(a), static_cast<char>(b)});
    }
  }
  std::mt19937 rng(16);
  for (int i = 0; i < 200'000; ++i) {
    std::string bytes(3 + rng() % 3, '\0');
    for (auto& c : bytes) {
      // Mostly lead and continuation bytes, where the edge cases are.
      c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x80 + rng() % 0x78);
    }
    check(bytes);
  }
}

TEST(Json, OnlyCanonicalEscapesAreAccepted)
{
  for (const auto& text : {"\0abc"s /* needed no escape */, "\0\\x41"s /* escapes a valid byte */,
                           "\0\\xE9"s /* upper case */, "\0\\q"s, "\0\\x4"s, "\0\\"s, "\0a\0"s,
                           "\0\xc3\xa9"s, "\0\\xc3\\xa9"s /* a valid sequence escaped */}) {
    EXPECT_FALSE(unescape_bytes(text)) << ::testing::PrintToString(text);
  }
  EXPECT_EQ(*unescape_bytes("\0\\xe9"s), "\xe9");
  EXPECT_EQ(*unescape_bytes("\0\\x00"s), "\0"s);
}

TEST(Json, StringsAndKeysAtAnyDepth)
{
  json doc = {{"generation", "g1"},
              {"files", {{"lib/a.ex", {{"sha256", "00"}}}, {"d\xff.txt", {{"sha256", "11"}}}}},
              {"changed_files", {"lib/a.ex", "d\xff.txt"}},
              {"count", 3},
              {"nothing", nullptr}};
  EXPECT_THROW((void)doc.dump(), json::exception);
  auto escaped = escape_strings(doc);
  auto text = escaped.dump();
  EXPECT_NE(text.find("\"lib/a.ex\""), std::string::npos); // valid names as they are
  EXPECT_NE(text.find("\"\\u0000d\\\\xff.txt\""), std::string::npos);
  auto back = unescape_strings(json::parse(text));
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, doc);
  EXPECT_FALSE(unescape_strings(json{{"k", {"\0\\q"s}}}));
  EXPECT_FALSE(unescape_strings(json{{"\0\\q"s, 1}}));
}

TEST(Json, DumpJsonReplacesInvalidBytesInsteadOfThrowing)
{
  EXPECT_EQ(dump_json(json{"d\xff.txt"}), "[\"d\xef\xbf\xbd.txt\"]");
}

} // namespace

} // namespace sandbox::util
