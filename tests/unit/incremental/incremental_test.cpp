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

// File names are bytes: one that is not UTF-8 goes through the signed cache
// files and back unchanged, as does a valid name that looks like an escape.
TEST(Store, FileNamesThatAreNotUtf8RoundTrip)
{
  auto root = util::TempDir::create("/tmp", "inc-unit-");
  ASSERT_TRUE(root);
  auto sandbox = root->path() / "sb";
  fs::create_directories(sandbox / "lib");
  const std::string latin1 = "lib/caf\xe9.ex";
  const std::string look_alike = "lib/caf\\xe9.ex"; // valid UTF-8, a backslash
  std::ofstream(sandbox / latin1) << "defmodule Cafe do\nend\n";
  std::ofstream(sandbox / look_alike) << "defmodule Look do\nend\n";
  std::ofstream(sandbox / "d\xff\xfe.txt") << "data";
  auto stamps = stamp_tree(sandbox);
  ASSERT_TRUE(stamps) << stamps.error();
  ASSERT_EQ(stamps->size(), 3u);
  DependencyGraph graph;
  graph.files[latin1].modules = {"Cafe"};
  graph.files[latin1].reads = {"d\xff\xfe.txt"};
  graph.files[look_alike].modules = {"Look"};

  std::vector<std::string> warnings;
  auto dir = CacheDir::open(sandbox, root->path() / "state", true, warnings);
  ASSERT_TRUE(dir) << dir.error();
  std::string key(32, 'k');
  auto written = dir->write(kFileHashes, {{"files", to_json(*stamps)}, {"changed", {latin1}}}, key);
  ASSERT_TRUE(written) << written.error();
  ASSERT_TRUE(dir->write(kDependencyGraph, {{"graph", to_json(graph)}}, key));
  // Valid names are keys as they are; the other one is NUL-marked.
  auto text = *util::read_file(sandbox / kCacheDirName / kFileHashes);
  EXPECT_NE(text.find("\"lib/caf\\\\xe9.ex\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"\\u0000lib/caf\\\\xe9.ex\""), std::string::npos) << text;

  auto hashes = dir->read(kFileHashes, key);
  ASSERT_TRUE(hashes) << hashes.error();
  auto stamps_back = stamps_from_json(hashes->at("files"));
  EXPECT_EQ(stamps_back.size(), stamps->size());
  for (const auto& [path, stamp] : *stamps) {
    ASSERT_TRUE(stamps_back.contains(path)) << path;
    EXPECT_EQ(stamps_back.at(path).sha256, stamp.sha256);
  }
  EXPECT_EQ(hashes->at("changed"), nlohmann::json({latin1}));
  auto graph_doc = dir->read(kDependencyGraph, key);
  ASSERT_TRUE(graph_doc) << graph_doc.error();
  auto graph_back = graph_from_json(graph_doc->at("graph"));
  EXPECT_EQ(graph_back.owners(), graph.owners());
  EXPECT_EQ(graph_back.files.at(latin1).reads, graph.files.at(latin1).reads);
  EXPECT_EQ(readers_of(graph_back, "d\xff\xfe.txt"), std::set<std::string>{latin1});

  // An edit of the non-UTF-8 file is seen against the stamps read back.
  std::ofstream(sandbox / "d\xff\xfe.txt", std::ios::trunc) << "other";
  auto now = stamp_tree(sandbox, stamps_back, now_ns());
  ASSERT_TRUE(now);
  EXPECT_EQ(diff_trees(stamps_back, *now).changed, std::set<std::string>{"d\xff\xfe.txt"});
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
