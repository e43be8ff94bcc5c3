#include "incremental/graph.h"
#include "incremental/source_facts.h"
#include "incremental/store.h"
#include "incremental/tree_stamps.h"
#include "util/fs.h"

#include <gtest/gtest.h>

#include <fstream>

namespace sandbox::incremental {
namespace {

TEST(SourceFacts, ModulesAndReferenceKinds)
{
  auto facts = analyze_elixir(R"(
defmodule A.B do
  alias Foo.{Bar, Baz}
  import Foo.Qux
  require Logger
  @external_resource "README.md"
  @spec f(Bar.t()) :: :ok
  def f(%Baz{} = x), do: Bar.go(x)
  Foo.Compile.now()
  defmodule Inner do
    def i, do: :ok
  end
end
)");
  EXPECT_EQ(facts.modules, (std::vector<std::string>{"A.B", "A.B.Inner"}));
  EXPECT_TRUE(facts.compile_refs.contains("Foo.Compile"));
  EXPECT_TRUE(facts.compile_refs.contains("Logger"));
  EXPECT_TRUE(facts.runtime_refs.contains("Foo.Bar"));
  EXPECT_TRUE(facts.export_refs.contains("Foo.Baz"));
  EXPECT_TRUE(facts.imports.contains("Foo.Qux"));
  EXPECT_TRUE(facts.reads.contains("README.md"));
  EXPECT_FALSE(facts.compile_refs.contains("Foo.Bar"));
  EXPECT_TRUE(facts.functions.contains("def f/1"));
}

TEST(SourceFacts, CommentsAndWhitespaceDoNotChangeDigests)
{
  auto a = analyze_elixir("defmodule A do\n  def f(x), do: x + 1\nend\n");
  auto b = analyze_elixir("defmodule A do\n  # note\n\n  def f(x),   do: x + 1 # more\nend\n");
  auto c = analyze_elixir("defmodule A do\n  def f(x), do: x + 2\nend\n");
  EXPECT_EQ(a.ast_digest, b.ast_digest);
  EXPECT_EQ(a.functions, b.functions);
  EXPECT_NE(a.functions.at("def f/1"), c.functions.at("def f/1"));
}

TEST(Graph, CompileConnectedAndExportRules)
{
  DependencyGraph g;
  auto file = [&](const std::string& name, const std::string& module) -> FileDeps& {
    auto& deps = g.files[name];
    deps.modules = {module};
    return deps;
  };
  file("a.ex", "A").compile_refs = {"B"};
  file("b.ex", "B").runtime_refs = {"C"};
  file("c.ex", "C");
  file("d.ex", "D").runtime_refs = {"C"};
  file("e.ex", "E").export_refs = {"C"};
  EXPECT_EQ(affected_files(g, {"C"}, {}, {}, {"c.ex"}), (std::set<std::string>{"a.ex"}));
  EXPECT_EQ(affected_files(g, {"C"}, {"C"}, {}, {"c.ex"}), (std::set<std::string>{"a.ex", "e.ex"}));
  EXPECT_TRUE(affected_files(g, {}, {}, {}).empty());
}

TEST(Store, SignedFilesVerifyAndTamperingIsRejected)
{
  auto root = util::TempDir::create("/tmp", "inc-unit-");
  ASSERT_TRUE(root);
  auto sandbox = root->path() / "sb";
  fs::create_directories(sandbox);
  std::vector<std::string> warnings;
  auto dir = CacheDir::open(sandbox, root->path() / "state", true, warnings);
  ASSERT_TRUE(dir) << dir.error();
  EXPECT_TRUE(dir->in_sandbox());
  std::string key(32, 'k');
  ASSERT_TRUE(dir->write(kCacheStats, {{"total_compilations", 3}}, key));
  auto back = dir->read(kCacheStats, key);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ((*back)["total_compilations"], 3);
  EXPECT_FALSE(dir->read(kCacheStats, std::string(32, 'x')));
  auto text = *util::read_file(sandbox / kCacheDirName / kCacheStats);
  text.replace(text.find('3'), 1, "4");
  ASSERT_TRUE(util::write_file_atomic(sandbox / kCacheDirName / kCacheStats, text));
  EXPECT_FALSE(dir->read(kCacheStats, key));
}

TEST(Store, PreviousCopiesVerifyUnderTheirOwnName)
{
  auto root = util::TempDir::create("/tmp", "inc-unit-");
  ASSERT_TRUE(root);
  auto sandbox = root->path() / "sb";
  fs::create_directories(sandbox);
  std::vector<std::string> warnings;
  auto dir = CacheDir::open(sandbox, root->path() / "state", true, warnings);
  ASSERT_TRUE(dir) << dir.error();
  std::string key(32, 'k');
  EXPECT_FALSE(dir->read_previous(kDependencyGraph, key)); // none yet
  ASSERT_TRUE(dir->write(kDependencyGraph, {{"generation", "a"}}, key));
  ASSERT_TRUE(dir->keep_previous(kDependencyGraph));
  EXPECT_FALSE(dir->read(kDependencyGraph, key)); // moved, not copied
  ASSERT_TRUE(dir->write(kDependencyGraph, {{"generation", "b"}}, key));
  auto previous = dir->read_previous(kDependencyGraph, key);
  ASSERT_TRUE(previous) << previous.error();
  EXPECT_EQ((*previous)["generation"], "a");
  EXPECT_EQ((*dir->read(kDependencyGraph, key))["generation"], "b");
  // Another cache file renamed into place does not verify as the graph.
  ASSERT_TRUE(dir->write(kFileHashes, {{"generation", "c"}}, key));
  fs::rename(sandbox / kCacheDirName / kFileHashes,
             sandbox / kCacheDirName / (std::string(kDependencyGraph) + kPreviousSuffix));
  EXPECT_FALSE(dir->read_previous(kDependencyGraph, key));
  dir->clear();
  EXPECT_FALSE(fs::exists(sandbox / kCacheDirName));
}

TEST(Store, ObjectsAreCheckedAgainstTheirName)
{
  auto root = util::TempDir::create("/tmp", "inc-unit-");
  ASSERT_TRUE(root);
  ObjectStore store(root->path() / "objects");
  auto sha = store.put("bytes");
  ASSERT_TRUE(sha);
  EXPECT_EQ(*store.get(*sha), "bytes");
  EXPECT_FALSE(store.get("../../etc/passwd"));
}

TEST(TreeStamps, DetectsEditsAddsAndDeletes)
{
  auto root = util::TempDir::create("/tmp", "inc-unit-");
  ASSERT_TRUE(root);
  std::ofstream(root->path() / "a") << "1";
  std::ofstream(root->path() / "b") << "2";
  auto first = stamp_tree(root->path());
  ASSERT_TRUE(first);
  std::ofstream(root->path() / "a", std::ios::trunc) << "3";
  fs::remove(root->path() / "b");
  std::ofstream(root->path() / "c") << "4";
  auto second = stamp_tree(root->path(), *first, now_ns());
  ASSERT_TRUE(second);
  auto diff = diff_trees(*first, *second);
  EXPECT_EQ(diff.changed, std::set<std::string>{"a"});
  EXPECT_EQ(diff.deleted, std::set<std::string>{"b"});
  EXPECT_EQ(diff.added, std::set<std::string>{"c"});
}

} // namespace
} // namespace sandbox::incremental
