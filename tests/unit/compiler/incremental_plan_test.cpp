// The strategy an incremental compile picks from the stored state and the
// tree, and the options fingerprint behind "the options changed".

#include "compiler/incremental_plan.h"

#include <gtest/gtest.h>

namespace sandbox::compiler {

namespace {

namespace inc = sandbox::incremental;

inc::FileStamp stamp(const std::string& sha256)
{
  inc::FileStamp s;
  s.sha256 = sha256;
  return s;
}

class IncrementalPlan : public ::testing::Test {
protected:
  IncrementalPlan()
  {
    m_options.compiler = core::Backend::elixirc;
    m_prev.compiler = "elixirc";
    m_prev.fingerprint = fingerprint(m_options);
    m_prev.stamps = {{"lib/a.ex", stamp("a")}, {"lib/b.ex", stamp("b")}, {"data.txt", stamp("d")}};
    m_prev.graph.files["lib/a.ex"].modules = {"A"};
    m_prev.graph.files["lib/a.ex"].reads = {"data.txt"};
    m_prev.graph.files["lib/b.ex"].modules = {"B"};
  }

  Plan plan(const inc::TreeStamps& now, const std::vector<std::filesystem::path>& explicit_changed = {})
  {
    return plan_compile(&m_prev, now, explicit_changed, m_options, m_prev.fingerprint, m_store);
  }

  core::CompileOptions m_options;
  CacheState m_prev;
  // No module is stored, so every object the state names is present.
  inc::ObjectStore m_store{"/nonexistent/objects"};
};

TEST_F(IncrementalPlan, NothingChangedIsACacheHit)
{
  auto p = plan(m_prev.stamps);
  EXPECT_EQ(p.strategy, "cache_hit");
  EXPECT_TRUE(p.original_changed().empty());
  EXPECT_EQ(p.sources, (std::set<std::string>{"lib/a.ex", "lib/b.ex"}));
}

TEST_F(IncrementalPlan, AnEditedSourceOrANamedFileIsIncremental)
{
  auto now = m_prev.stamps;
  now["lib/b.ex"] = stamp("b2");
  auto p = plan(now);
  EXPECT_EQ(p.strategy, "incremental");
  EXPECT_EQ(p.original_changed(), std::vector<std::string>{"lib/b.ex"});
  EXPECT_EQ(first_batch(p, m_prev.graph).files, std::set<std::string>{"lib/b.ex"});

  auto named = plan(m_prev.stamps, {"lib/a.ex"});
  EXPECT_EQ(named.strategy, "incremental");
  EXPECT_EQ(named.diff.changed, std::set<std::string>{"lib/a.ex"});
}

TEST_F(IncrementalPlan, AChangedInputThatIsNotASourceForcesItsReaders)
{
  auto now = m_prev.stamps;
  now["data.txt"] = stamp("d2");
  auto p = plan(now);
  ASSERT_EQ(p.strategy, "incremental");
  auto batch = first_batch(p, m_prev.graph);
  EXPECT_EQ(batch.files, std::set<std::string>{"lib/a.ex"});
  EXPECT_EQ(batch.forced, std::set<std::string>{"lib/a.ex"});
}

TEST_F(IncrementalPlan, FullWithAReason)
{
  auto now = m_prev.stamps;
  now["mix.exs"] = stamp("m");
  auto config = plan(now);
  EXPECT_EQ(config.strategy, "full");
  EXPECT_EQ(config.reason, "mix.exs changed");

  auto none = plan_compile(nullptr, m_prev.stamps, {}, m_options, m_prev.fingerprint, m_store);
  EXPECT_EQ(none.strategy, "full");
  EXPECT_EQ(none.reason, "no usable cache");

  m_options.force_recompile = true;
  EXPECT_EQ(plan(m_prev.stamps).reason, "force_recompile");
  m_options.force_recompile = false;

  m_prev.fingerprint = "other";
  EXPECT_EQ(plan_compile(&m_prev, m_prev.stamps, {}, m_options, fingerprint(m_options), m_store).reason,
            "the toolchain, compile options or env changed");
}

// Names that differ only in bytes that are not UTF-8 must not share a
// fingerprint (a replacement character would make them equal).
TEST(IncrementalFingerprint, NamesThatAreNotUtf8StayDistinct)
{
  core::CompileOptions a;
  core::CompileOptions b;
  a.source_files = {"lib/caf\xe9.ex"};
  b.source_files = {"lib/caf\xff.ex"};
  EXPECT_NE(fingerprint(a), fingerprint(b));
  EXPECT_EQ(fingerprint(a), fingerprint(a));
  a.source_files.clear();
  b.source_files.clear();
  a.env = {{"K", "\xe9"}};
  b.env = {{"K", "\xff"}};
  EXPECT_NE(fingerprint(a), fingerprint(b));
}

} // namespace

} // namespace sandbox::compiler
