#include "scan/erlang_scanner.h"

#include <gtest/gtest.h>

namespace sandbox::scan {
namespace {

using Kind = ErlangToken::Kind;

TEST(ErlangTokenizer, CommentsStringsCharsAndQuotedAtoms)
{
  auto tokens = tokenize_erlang("f() -> % os:cmd(\"x\")\n  \"a\\\"b\", $\", 'q a', 16#FF, 1.5e3, ?MODULE, X.\n");
  std::vector<Kind> kinds;
  for (const auto& t : tokens) kinds.push_back(t.kind);
  ASSERT_GE(tokens.size(), 18u);
  EXPECT_EQ(tokens[0].kind, Kind::atom);
  EXPECT_EQ(tokens[0].value, "f");
  EXPECT_EQ(tokens[3].text, "->");
  EXPECT_EQ(tokens[4].kind, Kind::string);
  EXPECT_EQ(tokens[4].line, 2u);
  EXPECT_EQ(tokens[6].kind, Kind::character);
  EXPECT_EQ(tokens[8].kind, Kind::atom);
  EXPECT_EQ(tokens[8].value, "q a");
  EXPECT_EQ(tokens[10].kind, Kind::number);
  EXPECT_EQ(tokens[10].text, "16#FF");
  EXPECT_EQ(tokens[12].text, "1.5e3");
  EXPECT_EQ(tokens[14].kind, Kind::macro);
  EXPECT_EQ(tokens[16].kind, Kind::var);
  EXPECT_EQ(tokens.back().kind, Kind::end_of_form);
}

TEST(ErlangTokenizer, NeverFailsOnGarbage)
{
  std::string garbage;
  for (int i = 0; i < 256; ++i) garbage += static_cast<char>(i);
  garbage += "'\"$";
  auto tokens = tokenize_erlang(garbage);
  EXPECT_FALSE(tokens.empty());
  EXPECT_TRUE(tokenize_erlang("").empty());
  EXPECT_EQ(tokenize_erlang("$").size(), 1u);
  EXPECT_EQ(tokenize_erlang("$\\").size(), 1u);
}

TEST(ErlangScanner, FunctionHeadsAreNotCalls)
{
  Report report({{":erlang", ":os"}, {}, 3});
  scan_erlang_source("a.erl", "-module(a).\nopen_port(X) -> X;\nopen_port(_) -> ok.\n", report);
  EXPECT_TRUE(report.result().threats.empty());
  scan_erlang_source("b.erl", "-module(b).\nf() -> case x of a -> ok; _ -> halt(1) end.\n", report);
  ASSERT_EQ(report.result().threats.size(), 1u);
  EXPECT_EQ(report.result().threats[0].operation, "system_halt");
  EXPECT_EQ(report.result().threats[0].line, 2u);
}

} // namespace
} // namespace sandbox::scan
