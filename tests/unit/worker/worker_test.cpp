// Which worker program a toolchain gets: the built one on its own Erlang/OTP,
// else one compiled from the source by that toolchain's erlc, once.

#include "worker/worker.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

namespace sandbox::worker {
namespace {

namespace fs = std::filesystem;

class WorkerProgram : public ::testing::Test {
protected:
  void SetUp() override
  {
    char pattern[] = "/tmp/sandbox-worker-program-XXXXXX";
    m_state = ::mkdtemp(pattern);
    ::setenv("SANDBOX_STATE_DIR", m_state.c_str(), 1);
  }
  void TearDown() override
  {
    ::unsetenv("SANDBOX_STATE_DIR");
    std::error_code ec;
    fs::remove_all(m_state, ec);
  }
  fs::path m_state;
};

TEST_F(WorkerProgram, TheSystemToolchainUsesTheBuiltProgram)
{
  auto system = backends::resolve_toolchain("");
  ASSERT_TRUE(system);
  auto ebin = worker_ebin_for(**system);
  ASSERT_TRUE(ebin) << core::describe(ebin.error());
  EXPECT_EQ(*ebin, locate_worker_ebin().path);
}

// A toolchain whose Erlang/OTP lives elsewhere (here: the system's erlc under
// another root, standing in for another OTP) gets the program compiled by
// its erlc into the state directory, and the next worker reuses it.
TEST_F(WorkerProgram, AnotherErlangGetsTheProgramCompiledOnceByItsErlc)
{
  auto system = backends::resolve_toolchain("");
  ASSERT_TRUE(system);
  backends::Toolchain other = **system;
  other.system = false;
  other.erlang_root = m_state / "other-otp";
  other.identity = "elixir test; otp elsewhere";
  auto first = worker_ebin_for(other);
  ASSERT_TRUE(first) << core::describe(first.error());
  EXPECT_NE(*first, locate_worker_ebin().path);
  EXPECT_EQ(first->parent_path(), m_state / "workers");
  auto beam = *first / "sandbox_worker.beam";
  ASSERT_TRUE(fs::is_regular_file(beam));
  struct stat before {};
  ASSERT_EQ(::stat(beam.c_str(), &before), 0);
  auto second = worker_ebin_for(other);
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, *first);
  struct stat after {};
  ASSERT_EQ(::stat(beam.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  // No staging directory is left beside it.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(m_state / "workers")) {
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
}

TEST_F(WorkerProgram, AnErlcThatFailsIsAJailSetupError)
{
  auto system = backends::resolve_toolchain("");
  ASSERT_TRUE(system);
  backends::Toolchain other = **system;
  other.system = false;
  other.erlang_root = m_state / "broken-otp";
  other.identity = "elixir test; otp broken";
  other.erlc = "/bin/false";
  auto ebin = worker_ebin_for(other);
  ASSERT_FALSE(ebin);
  const auto* failed = std::get_if<core::JailSetupFailed>(&ebin.error());
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->stage, "worker");
  EXPECT_FALSE(fs::exists(m_state / "workers") && !fs::is_empty(m_state / "workers"));
}

} // namespace
} // namespace sandbox::worker
