// validate_beam_file: what it refuses to read, and the module/file name check.

#include "beam/beam.h"
#include "beam_fixtures.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace sandbox::beam {
namespace {

using namespace testing;

class BeamFile : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create(util::default_temp_root(), "beam-file-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
  }

  const fs::path& dir() const { return m_dir->path(); }

  // The reason validate_beam_file gives, or "<valid>".
  static std::string reason(const fs::path& path, const Limits& limits = {})
  {
    auto info = validate_beam_file(path, limits);
    return info ? "<valid>" : info.error().reason;
  }

  // Copies the erlc fixture to `name` in the test's directory.
  fs::path copy_fixture(std::string_view name)
  {
    const auto& fixture = erlang_fixture();
    if (!fixture.beam) {
      return {};
    }
    const fs::path target = dir() / std::string(name);
    write_bytes(target, read_bytes(*fixture.beam));
    return target;
  }

  std::optional<util::TempDir> m_dir;
};

TEST_F(BeamFile, ModuleNotMatchingTheFileNameIsRefused)
{
  SANDBOX_REQUIRE_FIXTURE(erlang_fixture());
  EXPECT_EQ(reason(copy_fixture("sample.beam")), "<valid>");
  EXPECT_EQ(reason(copy_fixture("other.beam")),
            "module 'sample' does not match the file name other.beam (expected module 'other')");
  // The stem is compared whole, not as a prefix or case-insensitively.
  EXPECT_EQ(reason(copy_fixture("Sample.beam")),
            "module 'sample' does not match the file name Sample.beam (expected module 'Sample')");
  EXPECT_EQ(reason(copy_fixture("sample.x.beam")), "module 'sample' does not match the file name "
                                                   "sample.x.beam (expected module 'sample.x')");
}

TEST_F(BeamFile, ElixirModuleMatchesItsDottedFileName)
{
  const auto& fixture = elixir_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  const fs::path renamed = dir() / "Elixir.Sample.Other.beam";
  write_bytes(renamed, read_bytes(*fixture.beam));
  EXPECT_EQ(reason(*fixture.beam), "<valid>");
  EXPECT_EQ(reason(renamed), "module 'Elixir.Sample.Greeter' does not match the file name "
                             "Elixir.Sample.Other.beam (expected module 'Elixir.Sample.Other')");
}

TEST_F(BeamFile, FileWithoutBeamExtensionIsRefused)
{
  SANDBOX_REQUIRE_FIXTURE(erlang_fixture());
  EXPECT_EQ(reason(copy_fixture("sample")), "file name sample does not end in .beam");
  EXPECT_EQ(reason(copy_fixture("sample.erl")), "file name sample.erl does not end in .beam");
}

TEST_F(BeamFile, SymlinkIsRefusedEvenToAValidFile)
{
  SANDBOX_REQUIRE_FIXTURE(erlang_fixture());
  const fs::path target = copy_fixture("target.beam");
  const fs::path link = dir() / "sample.beam";
  fs::create_symlink(target, link);
  EXPECT_EQ(reason(link), "the path is a symbolic link; BEAM files are never read through links");
  const fs::path dangling = dir() / "dangling.beam";
  fs::create_symlink(dir() / "missing.beam", dangling);
  EXPECT_EQ(reason(dangling),
            "the path is a symbolic link; BEAM files are never read through links");
}

TEST_F(BeamFile, DirectoryIsRefused)
{
  const fs::path directory = dir() / "sample.beam";
  fs::create_directory(directory);
  EXPECT_EQ(reason(directory), "the path is a directory, not a regular file");
}

TEST_F(BeamFile, FifoIsRefusedWithoutBlocking)
{
  const fs::path fifo = dir() / "sample.beam";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(reason(fifo), "the path is a FIFO, not a regular file");
}

TEST_F(BeamFile, DeviceIsRefusedWithoutOpeningIt)
{
  const fs::path device = dir() / "sample.beam";
  // The same device numbers as /dev/null.
  if (::mknod(device.c_str(), S_IFCHR | 0600, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "cannot create a device node here (needs CAP_MKNOD)";
  }
  EXPECT_EQ(reason(device), "the path is a device, not a regular file");
}

TEST_F(BeamFile, EmptyFileIsRefused)
{
  const fs::path empty = dir() / "sample.beam";
  write_bytes(empty, "");
  EXPECT_EQ(reason(empty), "file is empty");
}

TEST_F(BeamFile, NonexistentFileIsRefused)
{
  EXPECT_EQ(reason(dir() / "missing.beam"), "cannot stat the file: No such file or directory");
  EXPECT_EQ(reason(dir() / "no" / "such" / "dir.beam"),
            "cannot stat the file: No such file or directory");
}

TEST_F(BeamFile, FileAboveTheSizeLimitIsRefusedBeforeReading)
{
  SANDBOX_REQUIRE_FIXTURE(erlang_fixture());
  const fs::path path = copy_fixture("sample.beam");
  Limits limits;
  limits.max_file_bytes = 64;
  EXPECT_EQ(reason(path, limits),
            "file is " + std::to_string(fs::file_size(path)) + " bytes, more than the limit of 64");
}

TEST_F(BeamFile, UnreadableFileReportsTheError)
{
  SANDBOX_REQUIRE_FIXTURE(erlang_fixture());
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads files whatever their mode";
  }
  const fs::path path = copy_fixture("sample.beam");
  fs::permissions(path, fs::perms::none);
  EXPECT_EQ(reason(path), "cannot open the file: Permission denied");
}

TEST_F(BeamFile, ParseErrorsAreReportedForFiles)
{
  const fs::path path = dir() / "sample.beam";
  write_bytes(path, std::string("FOR1\0\0\0\4BEAM", 12)); // a form with no chunks
  EXPECT_EQ(reason(path), "missing atom table: no AtU8 or Atom chunk");
}

} // namespace
} // namespace sandbox::beam
