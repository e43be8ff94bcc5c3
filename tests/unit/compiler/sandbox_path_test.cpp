#include "compiler/sandbox_path.h"
#include "util/fs.h"

#include <sys/stat.h>

#include <fstream>
#include <gtest/gtest.h>
#include <optional>

namespace sandbox::compiler {

namespace {

class SandboxPath : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create("/tmp", "sandbox-path-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
    m_root = fs::canonical(m_dir->path());
    fs::create_directories(sandbox() / "lib" / "nested");
    std::ofstream(sandbox() / "lib" / "a.ex") << "defmodule A do\nend\n";
    std::ofstream(sandbox() / "lib" / "nested" / "b.ex") << "defmodule B do\nend\n";
    std::ofstream(m_root / "outside.ex") << "defmodule Outside do\nend\n";
  }

  [[nodiscard]] const fs::path& root() const { return m_root; }
  [[nodiscard]] fs::path sandbox() const { return m_root / "sandbox"; }

private:
  std::optional<util::TempDir> m_dir;
  fs::path m_root;
};

TEST_F(SandboxPath, ResolvesAnExistingDirectory)
{
  auto resolved = resolve_sandbox(sandbox().string());
  ASSERT_TRUE(resolved) << resolved.error().reason;
  EXPECT_EQ(*resolved, sandbox());
}

TEST_F(SandboxPath, ResolvesDotDotAndSymlinks)
{
  fs::create_directory(root() / "elsewhere");
  auto dotted = resolve_sandbox((root() / "elsewhere" / ".." / "sandbox").string());
  ASSERT_TRUE(dotted) << dotted.error().reason;
  EXPECT_EQ(*dotted, sandbox());
  fs::create_directory_symlink(sandbox(), root() / "link");
  auto linked = resolve_sandbox((root() / "link").string());
  ASSERT_TRUE(linked) << linked.error().reason;
  EXPECT_EQ(*linked, sandbox());
  auto with_slash = resolve_sandbox(sandbox().string() + "/");
  ASSERT_TRUE(with_slash);
  EXPECT_EQ(*with_slash, sandbox());
}

TEST_F(SandboxPath, SuspiciousLookingNamesAreFine)
{
  for (const char* name : {"binx", "etc", "usr", "root", "sbin", "..."}) {
    auto dir = root() / name / "bin";
    fs::create_directories(dir);
    auto resolved = resolve_sandbox(dir.string());
    EXPECT_TRUE(resolved) << dir << ": " << (resolved ? "" : resolved.error().reason);
  }
}

TEST_F(SandboxPath, RefusesWhatIsNotADirectory)
{
  struct Bad {
    std::string path;
    std::string reason_part;
  };
  fs::create_symlink(root() / "missing", root() / "dangling");
  for (const auto& bad : std::vector<Bad>{
           {"", "empty"},
           {std::string("/tmp\0/etc", 9), "NUL"},
           {(root() / "missing").string(), "does not exist"},
           {(root() / "dangling").string(), "does not exist"},
           {(root() / "outside.ex").string(), "not a directory"},
           {"/", "root"},
           {(root() / "sandbox" / ".." / ".." / ".." / ".." / ".." / ".." / ".." / "..").string(),
            "root"},
       }) {
    auto resolved = resolve_sandbox(bad.path);
    ASSERT_FALSE(resolved) << bad.path;
    EXPECT_EQ(resolved.error().path, bad.path);
    EXPECT_NE(resolved.error().reason.find(bad.reason_part), std::string::npos)
        << bad.path << ": " << resolved.error().reason;
  }
}

TEST_F(SandboxPath, RelativePathsResolveAgainstTheWorkingDirectory)
{
  auto cwd = fs::current_path();
  fs::current_path(root());
  auto resolved = resolve_sandbox("sandbox");
  fs::current_path(cwd);
  ASSERT_TRUE(resolved);
  EXPECT_EQ(*resolved, sandbox());
}

TEST_F(SandboxPath, SourceFilesInsideAreReturnedRelative)
{
  auto files =
      resolve_source_files(sandbox(), {"lib/a.ex", (sandbox() / "lib" / "nested" / "b.ex").string(),
                                       "./lib/../lib/a.ex"});
  ASSERT_TRUE(files) << files.error().reason;
  EXPECT_EQ(*files, (std::vector<fs::path>{"lib/a.ex", "lib/nested/b.ex", "lib/a.ex"}));
  auto none = resolve_source_files(sandbox(), {});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(SandboxPath, SourceFilesOutsideAreRefused)
{
  fs::create_symlink(root() / "outside.ex", sandbox() / "lib" / "link.ex");
  fs::create_directory(root() / "sandboxx");
  std::ofstream(root() / "sandboxx" / "c.ex") << "";
  for (const std::string& bad :
       {std::string("../outside.ex"), (root() / "outside.ex").string(), std::string("lib/link.ex"),
        std::string("lib/../../outside.ex"), std::string("../sandboxx/c.ex"),
        (root() / "sandboxx" / "c.ex").string()}) {
    auto files = resolve_source_files(sandbox(), {"lib/a.ex", bad});
    ASSERT_FALSE(files) << bad;
    EXPECT_EQ(files.error().path, bad);
    EXPECT_NE(files.error().reason.find("outside"), std::string::npos) << files.error().reason;
  }
}

TEST_F(SandboxPath, SymlinkInsidePointingInsideIsAccepted)
{
  fs::create_symlink(sandbox() / "lib" / "a.ex", sandbox() / "alias.ex");
  auto files = resolve_source_files(sandbox(), {"alias.ex"});
  ASSERT_TRUE(files) << files.error().reason;
  // The file that will be read, not the link.
  EXPECT_EQ(*files, std::vector<fs::path>{"lib/a.ex"});
}

TEST_F(SandboxPath, SourceFilesMustBeExistingRegularFiles)
{
  ::mkfifo((sandbox() / "fifo.ex").c_str(), 0600);
  for (const std::string& bad :
       {std::string("lib/missing.ex"), std::string("lib"), std::string("."), std::string(""),
        std::string("fifo.ex"), std::string("lib/a.ex\0x", 10)}) {
    auto files = resolve_source_files(sandbox(), {bad});
    EXPECT_FALSE(files) << '"' << bad << '"';
  }
}

} // namespace

} // namespace sandbox::compiler
