#include "syntax/elixir_tree.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sandbox::syntax {
namespace {

std::vector<std::string> types_in(const Tree& tree)
{
  std::vector<std::string> types;
  walk(tree.root(), [&](const Node& node) {
    if (node.named()) types.emplace_back(node.type());
    return true;
  });
  return types;
}

TEST(ElixirTree, ParsesARemoteCallWithTargetAndPositions)
{
  auto tree = Tree::parse("defmodule A do\n  def f, do: System.cmd(\"ls\", [])\nend\n");
  ASSERT_TRUE(tree) << tree.error();
  EXPECT_FALSE(tree->has_errors());
  Node found;
  walk(tree->root(), [&](const Node& node) {
    if (node.type() == "call" && node.field("target").type() == "dot" &&
        node.field("target").field("left").text() == "System") {
      found = node;
    }
    return true;
  });
  ASSERT_TRUE(found);
  EXPECT_EQ(found.field("target").field("right").text(), "cmd");
  EXPECT_EQ(found.start().line, 2u);
  EXPECT_EQ(found.start().column, 14u);
  EXPECT_EQ(tree->line(2), "  def f, do: System.cmd(\"ls\", [])");
}

TEST(ElixirTree, CommentsAndStringsAreTheirOwnNodes)
{
  auto tree = Tree::parse("# System.cmd(\"x\")\nx = \"System.cmd\"\n");
  ASSERT_TRUE(tree);
  auto types = types_in(*tree);
  EXPECT_NE(std::find(types.begin(), types.end(), "comment"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "string"), types.end());
  EXPECT_EQ(std::find(types.begin(), types.end(), "dot"), types.end());
}

TEST(ElixirTree, SyntaxErrorsStillGiveATree)
{
  auto tree = Tree::parse("defmodule A do\n  def f(, do\n");
  ASSERT_TRUE(tree);
  EXPECT_TRUE(tree->has_errors());
}

TEST(ElixirTree, DeepNestingDoesNotExhaustTheStack)
{
  std::string deep(20000, '[');
  deep += std::string(20000, ']');
  auto tree = Tree::parse(deep);
  ASSERT_TRUE(tree) << tree.error();
  std::size_t count = 0;
  walk(tree->root(), [&](const Node&) {
    ++count;
    return true;
  });
  EXPECT_GT(count, 20000u);
}

TEST(ElixirTree, WalkCanSkipChildren)
{
  auto tree = Tree::parse("f(g(h(1)))");
  ASSERT_TRUE(tree);
  int calls = 0;
  walk(tree->root(), [&](const Node& node) {
    if (node.type() == "call") {
      ++calls;
      return false;
    }
    return true;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ElixirTree, LinesPastTheEndAreEmpty)
{
  auto tree = Tree::parse("a\r\nb");
  ASSERT_TRUE(tree);
  EXPECT_EQ(tree->line(1), "a");
  EXPECT_EQ(tree->line(2), "b");
  EXPECT_EQ(tree->line(3), "");
  EXPECT_EQ(tree->line(0), "");
}

TEST(ElixirTree, TreesMoveWithoutInvalidatingNodes)
{
  auto parsed = Tree::parse("Foo.bar()");
  ASSERT_TRUE(parsed);
  Tree moved = std::move(*parsed);
  EXPECT_EQ(moved.root().text(), "Foo.bar()");
}

} // namespace
} // namespace sandbox::syntax
