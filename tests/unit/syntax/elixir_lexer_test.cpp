#include "syntax/elixir_lexer.h"
#include "syntax/elixir_tree.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sandbox::syntax {
namespace {

LexedElixir lex(const std::string& source)
{
  auto lexed = lex_elixir(source);
  EXPECT_TRUE(lexed) << (lexed ? "" : lexed.error());
  return lexed ? *lexed : LexedElixir{};
}

bool inert_at(const std::string& source, const LexedElixir& lexed, const std::string& needle, std::size_t nth = 0)
{
  auto at = source.find(needle);
  for (std::size_t i = 0; i < nth && at != std::string::npos; ++i) at = source.find(needle, at + 1);
  EXPECT_NE(at, std::string::npos) << needle;
  return in_ranges(lexed.inert, static_cast<std::uint32_t>(at));
}

std::vector<std::string> unit_texts(const std::string& source, const LexedElixir& lexed)
{
  std::vector<std::string> out;
  for (const auto& unit : lexed.units) out.push_back(source.substr(unit.begin, unit.end - unit.begin));
  return out;
}

bool has_unit(const std::vector<std::string>& units, const std::string& text)
{
  for (const auto& unit : units) {
    if (unit == text) return true;
  }
  return false;
}

TEST(ElixirLexer, CommentsStringsSigilsAndCharactersAreInertButInterpolationIsCode)
{
  std::string source = "# System.cmd\n"
                       "a = \"x #{System.cmd(\"ls\", [])} y\"\n"
                       "b = ~s(System) <> ~S\"\"\"\nSystem\n\"\"\"\n"
                       "c = ?\" <> 'sys#{Code.eval_string(\"1\")}'\n"
                       "d = \"\"\"\n  doc \\\n  Port\n  \"\"\"\n"
                       "e = :\"Elixir.#{x}\"\n";
  auto lexed = lex(source);
  EXPECT_TRUE(inert_at(source, lexed, "System", 0));  // comment
  EXPECT_FALSE(inert_at(source, lexed, "System", 1)); // interpolation
  EXPECT_TRUE(inert_at(source, lexed, "System", 2));  // ~s(...)
  EXPECT_TRUE(inert_at(source, lexed, "System", 3));  // ~S heredoc
  EXPECT_FALSE(inert_at(source, lexed, "Code"));      // interpolation in a charlist, after ?"
  EXPECT_TRUE(inert_at(source, lexed, "Port"));       // heredoc with an escaped line end
  EXPECT_FALSE(inert_at(source, lexed, "e = "));
  ASSERT_EQ(lexed.quoted_atoms.size(), 1u);
  EXPECT_EQ(source.substr(lexed.quoted_atoms[0].begin, lexed.quoted_atoms[0].end - lexed.quoted_atoms[0].begin),
            ":\"Elixir.#{x}\"");
}

TEST(ElixirLexer, DoBlocksAreUnitsOnlyWhenWhatFollowsStartsANewExpression)
{
  std::string source = "x = if a do\n  1\nend\n"
                       "y = case b do\n  _ -> 2\nend |> f()\n"
                       "z = foo do\n  3\nend\n|> g()\n";
  auto units = unit_texts(source, lex(source));
  EXPECT_TRUE(has_unit(units, "do\n  1\nend"));
  EXPECT_FALSE(has_unit(units, "do\n  _ -> 2\nend"));
  EXPECT_FALSE(has_unit(units, "do\n  3\nend"));
}

TEST(ElixirLexer, StatementsFollowContinuationLinesAndSkipClauseBodies)
{
  std::string source = "defmodule M do\n"
                       "  def f(x)\n      when x > 0,\n      do: x\n"
                       "  def g(y) do\n    y\n    |> h()\n  end\n"
                       "  def k(z) do\n    case z do\n      1 -> :a\n      _ -> :b\n    end\n  end\n"
                       "end\n";
  auto units = unit_texts(source, lex(source));
  // A statement reaches to the next statement, so it takes the indentation along.
  EXPECT_TRUE(has_unit(units, "def f(x)\n      when x > 0,\n      do: x\n  "));
  EXPECT_TRUE(has_unit(units, "y\n    |> h()\n  "));
  EXPECT_FALSE(has_unit(units, "1 -> :a\n      "));
  EXPECT_TRUE(has_unit(units, source)); // the module, to the end of the file
}

TEST(ElixirLexer, WhatItCannotReadIsAnError)
{
  EXPECT_FALSE(lex_elixir("x = \"unterminated\n"));
  EXPECT_FALSE(lex_elixir("x = \"\"\"\nno end\n"));
  EXPECT_FALSE(lex_elixir("end\n"));
  EXPECT_FALSE(lex_elixir("if a do\n  1\n"));
  EXPECT_FALSE(lex_elixir("x = ~q\"\n"));
  std::string deep = "x = ";
  for (int i = 0; i <= kMaxInterpolationDepth; ++i) deep += "\"#{";
  EXPECT_FALSE(lex_elixir(deep));
}

TEST(ElixirTreeWithout, CutRangesAreNotParsedAndPositionsStayTheSourceOnes)
{
  std::string source = "defmodule M do\n  def f do\n    this is )( not parsed\n  end\n  def g, do: System.cmd(\"x\", [])\nend\n";
  auto begin = static_cast<std::uint32_t>(source.find("do\n    this"));
  auto end = static_cast<std::uint32_t>(source.find("end\n  def g") + 3);
  auto whole = Tree::parse(source);
  ASSERT_TRUE(whole);
  EXPECT_TRUE(whole->has_errors());
  auto cut = Tree::parse_without(source, {{begin, end}});
  ASSERT_TRUE(cut) << cut.error();
  EXPECT_FALSE(cut->has_errors());
  Node call;
  walk(cut->root(), [&](const Node& node) {
    if (node.type() == "call" && node.field("target").type() == "dot") call = node;
    return true;
  });
  ASSERT_TRUE(call);
  EXPECT_EQ(call.text(), "System.cmd(\"x\", [])");
  EXPECT_EQ(call.start().line, 5u);
  EXPECT_EQ(call.start().column, 14u);
  EXPECT_FALSE(Tree::parse_without(source, {{end, begin}}));
}

} // namespace
} // namespace sandbox::syntax
