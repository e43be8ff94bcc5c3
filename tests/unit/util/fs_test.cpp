#include "util/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <optional>
#include <thread>

namespace sandbox::util {

namespace {

class FsTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = TempDir::create("/tmp", "fs-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
  }

  [[nodiscard]] const fs::path& root() const { return m_dir->path(); }

  fs::path write(const fs::path& relative, const std::string& text) const
  {
    auto path = root() / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

private:
  std::optional<TempDir> m_dir;
};

// Runs `body` in a child process and returns its exit status, or nothing
// when it did not finish in time: a call that blocks forever cannot hang the
// test.
std::optional<int> exit_status_within(std::chrono::milliseconds limit,
                                      const std::function<int()>& body)
{
  pid_t pid = ::fork();
  if (pid == 0) {
    ::_exit(body());
  }
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return std::nullopt;
}

// --- is_within -------------------------------------------------------------

TEST(IsWithin, ComparesComponentsNotPrefixes)
{
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/bin"));
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/bin/x"));
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/bin/x/y.ex"));
  EXPECT_FALSE(is_within("/tmp/bin", "/tmp/binx"));
  EXPECT_FALSE(is_within("/tmp/bin", "/tmp/binx/y"));
  EXPECT_FALSE(is_within("/tmp/binx", "/tmp/bin"));
  EXPECT_FALSE(is_within("/tmp/bin", "/tmp"));
  EXPECT_FALSE(is_within("/tmp/bin", "/etc/passwd"));
}

TEST(IsWithin, TrailingSlashes)
{
  EXPECT_TRUE(is_within("/tmp/bin/", "/tmp/bin/x"));
  EXPECT_TRUE(is_within("/tmp/bin/", "/tmp/bin"));
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/bin/"));
  EXPECT_TRUE(is_within("/tmp/bin/", "/tmp/bin/"));
  EXPECT_FALSE(is_within("/tmp/bin/", "/tmp/binx"));
  EXPECT_FALSE(is_within("/tmp/bin/", "/tmp/binx/"));
}

TEST(IsWithin, DotDotIsCollapsedLexically)
{
  EXPECT_FALSE(is_within("/tmp/bin", "/tmp/bin/../etc"));
  EXPECT_FALSE(is_within("/tmp/bin", "/tmp/bin/x/../../binx"));
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/bin/x/../y"));
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/other/../bin/z"));
  EXPECT_TRUE(is_within("/tmp/bin", "/tmp/bin/./x"));
  EXPECT_FALSE(is_within("/tmp/bin", "/tmp/bin/.."));
}

TEST(IsWithin, RootContainsEverythingAbsolute)
{
  EXPECT_TRUE(is_within("/", "/etc"));
  EXPECT_TRUE(is_within("/", "/"));
  EXPECT_FALSE(is_within("/", "relative/path"));
}

// --- read_file -------------------------------------------------------------

TEST_F(FsTest, ReadFileReadsWholeFiles)
{
  std::string data(200'000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>(i * 7);
  }
  auto path = write("data.bin", data);
  auto read = read_file(path);
  ASSERT_TRUE(read) << read.error();
  EXPECT_EQ(*read, data);
  auto empty = read_file(write("empty", ""));
  ASSERT_TRUE(empty) << empty.error();
  EXPECT_EQ(*empty, "");
}

TEST_F(FsTest, ReadFileCap)
{
  auto path = write("ten", "0123456789");
  EXPECT_TRUE(read_file(path, 10));
  auto over = read_file(path, 9);
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().find("larger than 9"), std::string::npos) << over.error();
  EXPECT_FALSE(read_file(path, 0));
}

TEST_F(FsTest, ReadFileRefusesASymlink)
{
  auto target = write("target", "secret");
  fs::create_symlink(target, root() / "link");
  auto read = read_file(root() / "link");
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().find("link"), std::string::npos) << read.error();
  // A symlink to a directory component earlier in the path is followed: only
  // the last component is protected (O_NOFOLLOW).
  fs::create_directory_symlink(root(), root() / "dirlink");
  EXPECT_TRUE(read_file(root() / "dirlink" / "target"));
}

TEST_F(FsTest, ReadFileRefusesDirectoriesAndMissingFiles)
{
  EXPECT_FALSE(read_file(root()));
  auto missing = read_file(root() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("missing"), std::string::npos);
}

TEST_F(FsTest, ReadFileDoesNotBlockOnAFifo)
{
  auto fifo = root() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto status =
      exit_status_within(std::chrono::seconds(3), [&] { return read_file(fifo) ? 1 : 0; });
  ASSERT_TRUE(status.has_value()) << "read_file blocked on a FIFO with no writer";
  EXPECT_EQ(*status, 0) << "a FIFO was read as a regular file";
}

// --- write_file_atomic -----------------------------------------------------

TEST_F(FsTest, WriteFileAtomicCreatesAndReplaces)
{
  auto path = root() / "out.txt";
  ASSERT_TRUE(write_file_atomic(path, "first", 0600));
  EXPECT_EQ(*read_file(path), "first");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  auto inode = st.st_ino;
  ASSERT_TRUE(write_file_atomic(path, "second", 0644));
  EXPECT_EQ(*read_file(path), "second");
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_NE(st.st_ino, inode) << "replaced in place, not by rename";
  // No temporary file is left beside it.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(root())) {
    ++entries;
  }
  EXPECT_EQ(entries, 1U);
}

TEST_F(FsTest, WriteFileAtomicReplacesASymlinkRatherThanWritingThroughIt)
{
  auto target = write("target", "original");
  auto link = root() / "link";
  fs::create_symlink(target, link);
  ASSERT_TRUE(write_file_atomic(link, "new"));
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(*read_file(link), "new");
  EXPECT_EQ(*read_file(target), "original");
}

TEST_F(FsTest, WriteFileAtomicFailsCleanly)
{
  auto missing_dir = root() / "no" / "such" / "file";
  EXPECT_FALSE(write_file_atomic(missing_dir, "x"));
  fs::create_directory(root() / "dir");
  auto onto_dir = write_file_atomic(root() / "dir", "x");
  EXPECT_FALSE(onto_dir);
  EXPECT_TRUE(fs::is_directory(root() / "dir"));
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(root())) {
    ++entries;
  }
  EXPECT_EQ(entries, 1U) << "a temporary file was left behind";
}

// --- list_tree -------------------------------------------------------------

TEST_F(FsTest, ListTreeReportsSymlinksWithoutFollowingThem)
{
  write("a/b/c.txt", "abc");
  write("a/x.sh", "#!/bin/sh\n");
  ::chmod((root() / "a" / "x.sh").c_str(), 0755);
  auto outside = TempDir::create("/tmp", "fs-test-outside-");
  ASSERT_TRUE(outside);
  std::ofstream(outside->path() / "secret") << "secret";
  fs::create_directory_symlink(outside->path(), root() / "a" / "dirlink");
  fs::create_symlink("/etc/passwd", root() / "filelink");
  ASSERT_EQ(::mkfifo((root() / "fifo").c_str(), 0600), 0);

  auto tree = list_tree(root());
  ASSERT_TRUE(tree) << tree.error();
  std::map<std::string, TreeEntry> by_path;
  for (const auto& entry : *tree) {
    by_path[entry.relative.string()] = entry;
  }
  EXPECT_FALSE(by_path.contains("a/dirlink/secret")) << "followed a directory symlink";
  ASSERT_TRUE(by_path.contains("a/dirlink"));
  EXPECT_EQ(by_path["a/dirlink"].type, fs::file_type::symlink);
  ASSERT_TRUE(by_path.contains("filelink"));
  EXPECT_EQ(by_path["filelink"].type, fs::file_type::symlink);
  EXPECT_EQ(by_path["a"].type, fs::file_type::directory);
  EXPECT_EQ(by_path["a/b/c.txt"].type, fs::file_type::regular);
  EXPECT_EQ(by_path["a/b/c.txt"].size, 3U);
  EXPECT_EQ(by_path["a/x.sh"].mode & 0777, 0755U);
  ASSERT_TRUE(by_path.contains("fifo"));
  EXPECT_NE(by_path["fifo"].type, fs::file_type::regular);
  // Sorted by relative path.
  for (std::size_t i = 1; i < tree->size(); ++i) {
    EXPECT_LT((*tree)[i - 1].relative, (*tree)[i].relative);
  }
  EXPECT_EQ(tree->size(), 7U); // a, a/b, a/b/c.txt, a/dirlink, a/x.sh, fifo, filelink
}

TEST_F(FsTest, ListTreeOfAMissingDirectoryIsAnError)
{
  EXPECT_FALSE(list_tree(root() / "missing"));
}

// --- remove_tree and TempDir -----------------------------------------------

TEST_F(FsTest, RemoveTreeDoesNotFollowSymlinks)
{
  auto outside = TempDir::create("/tmp", "fs-test-outside-");
  ASSERT_TRUE(outside);
  std::ofstream(outside->path() / "keep") << "keep";
  auto tree = root() / "tree";
  write("tree/sub/file", "x");
  fs::create_directory_symlink(outside->path(), tree / "sub" / "link");
  ::chmod((tree / "sub").c_str(), 0500);
  ASSERT_TRUE(remove_tree(tree));
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_TRUE(fs::exists(outside->path() / "keep"));
}

TEST(TempDir, CreatesPrivateUniqueDirectoriesAndRemovesThem)
{
  fs::path first_path;
  {
    auto first = TempDir::create("/tmp", "fs-test-tmp-");
    auto second = TempDir::create("/tmp", "fs-test-tmp-");
    ASSERT_TRUE(first && second);
    EXPECT_NE(first->path(), second->path());
    EXPECT_EQ(first->path().filename().string().rfind("fs-test-tmp-", 0), 0U);
    struct stat st {};
    ASSERT_EQ(::stat(first->path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700U);
    first_path = first->path();
    std::ofstream(first_path / "file") << "x";
  }
  EXPECT_FALSE(fs::exists(first_path));
}

TEST(TempDir, KeepHandsOverOwnership)
{
  fs::path kept;
  {
    auto dir = TempDir::create("/tmp", "fs-test-tmp-");
    ASSERT_TRUE(dir);
    kept = dir->keep();
    EXPECT_TRUE(dir->path().empty());
  }
  EXPECT_TRUE(fs::is_directory(kept));
  ASSERT_TRUE(remove_tree(kept));
  EXPECT_FALSE(fs::exists(kept));
}

TEST(TempDir, MoveTransfersOwnership)
{
  auto dir = TempDir::create("/tmp", "fs-test-tmp-");
  ASSERT_TRUE(dir);
  fs::path path = dir->path();
  {
    TempDir moved = std::move(*dir);
    EXPECT_EQ(moved.path(), path);
    EXPECT_TRUE(dir->path().empty());
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(TempDir, FailsInAMissingParent)
{
  auto dir = TempDir::create("/nonexistent-parent-dir", "x-");
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().find("/nonexistent-parent-dir"), std::string::npos);
}

} // namespace

} // namespace sandbox::util
