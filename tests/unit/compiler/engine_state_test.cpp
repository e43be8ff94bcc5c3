#include "compiler/engine_state.h"
#include "util/fs.h"
#include "util/hash.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <optional>
#include <sstream>
#include <sys/wait.h>
#include <vector>

namespace sandbox::compiler {

namespace {

// The engine key is cached for the life of the process, so one state dir
// serves every test of this binary; it is removed at exit.
class StateDir {
public:
  StateDir()
  {
    auto dir = util::TempDir::create("/tmp", "engine-state-test-");
    if (dir) {
      m_path = dir->keep();
      ::setenv("SANDBOX_STATE_DIR", (m_path / "state").c_str(), 1);
    }
  }
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  ~StateDir()
  {
    if (!m_path.empty()) {
      (void)util::remove_tree(m_path);
    }
  }
  [[nodiscard]] const fs::path& path() const { return m_path; }

private:
  fs::path m_path;
};

const StateDir& state()
{
  static StateDir dir;
  return dir;
}

class EngineState : public ::testing::Test {
protected:
  void SetUp() override
  {
    ASSERT_FALSE(state().path().empty());
    auto dir = util::TempDir::create("/tmp", "engine-state-jobs-");
    ASSERT_TRUE(dir) << dir.error();
    m_jobs.emplace(std::move(*dir));
  }

  [[nodiscard]] fs::path jobs() const { return m_jobs->path(); }

  fs::path make_temp_dir() const
  {
    auto made = create_marked_temp_dir(jobs());
    EXPECT_TRUE(made) << (made ? "" : made.error());
    return made ? *made : fs::path();
  }

  static fs::path marker_of(const fs::path& dir)
  {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().filename().string().starts_with(".")) {
        return entry.path();
      }
    }
    return {};
  }

private:
  std::optional<util::TempDir> m_jobs;
};

TEST_F(EngineState, StateDirFollowsTheEnvironment)
{
  EXPECT_EQ(state_dir(), state().path() / "state");
}

TEST_F(EngineState, StateDirFallbacks)
{
  // state_dir() reads the environment on each call (the key stays cached).
  std::string saved = std::getenv("SANDBOX_STATE_DIR");
  const char* xdg = std::getenv("XDG_STATE_HOME");
  std::optional<std::string> saved_xdg = xdg ? std::optional<std::string>(xdg) : std::nullopt;
  ::setenv("SANDBOX_STATE_DIR", "relative/dir", 1);
  ::setenv("XDG_STATE_HOME", "/xdg/state", 1);
  EXPECT_EQ(state_dir(), fs::path("/xdg/state/sandbox"));
  ::unsetenv("SANDBOX_STATE_DIR");
  ::setenv("XDG_STATE_HOME", "not/absolute", 1);
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home == '/') {
    EXPECT_EQ(state_dir(), fs::path(home) / ".local" / "state" / "sandbox");
  }
  ::setenv("SANDBOX_STATE_DIR", saved.c_str(), 1);
  if (saved_xdg) {
    ::setenv("XDG_STATE_HOME", saved_xdg->c_str(), 1);
  } else {
    ::unsetenv("XDG_STATE_HOME");
  }
  EXPECT_EQ(state_dir(), state().path() / "state");
}

TEST_F(EngineState, KeyIsPrivateStableAndThirtyTwoBytes)
{
  auto key = engine_key();
  ASSERT_TRUE(key) << key.error();
  EXPECT_EQ(key->size(), 32U);
  EXPECT_EQ(*engine_key(), *key);
  struct stat st {};
  ASSERT_EQ(::lstat((state_dir() / "key").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  ASSERT_EQ(::lstat(state_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  EXPECT_EQ(*util::read_file(state_dir() / "key"), *key);
}

TEST_F(EngineState, CreatedDirIsPrivateAndVerifies)
{
  auto dir = make_temp_dir();
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(dir.parent_path(), fs::canonical(jobs()));
  EXPECT_TRUE(dir.filename().string().starts_with("sandbox-job-"));
  struct stat st {};
  ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700U);
  auto marker = marker_of(dir);
  ASSERT_FALSE(marker.empty());
  ASSERT_EQ(::lstat(marker.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  auto verified = verify_temp_dir_marker(dir);
  EXPECT_TRUE(verified) << (verified ? "" : verified.error());
  // Content in the directory does not matter.
  std::ofstream(dir / "result.beam") << "x";
  EXPECT_TRUE(verify_temp_dir_marker(dir));
  // Nor does the spelling of the path.
  EXPECT_TRUE(verify_temp_dir_marker(dir.parent_path() / "." / dir.filename()));
}

TEST_F(EngineState, TwoDirsAreDistinctAndEachVerifies)
{
  auto first = make_temp_dir();
  auto second = make_temp_dir();
  EXPECT_NE(first, second);
  EXPECT_TRUE(verify_temp_dir_marker(first));
  EXPECT_TRUE(verify_temp_dir_marker(second));
  // A marker copied from one real dir into another does not verify there.
  fs::copy_file(marker_of(first), marker_of(second), fs::copy_options::overwrite_existing);
  EXPECT_FALSE(verify_temp_dir_marker(second));
}

TEST_F(EngineState, CopyDoesNotVerify)
{
  auto dir = make_temp_dir();
  auto copy = jobs() / "copy";
  fs::copy(dir, copy, fs::copy_options::recursive);
  ASSERT_FALSE(marker_of(copy).empty());
  auto verified = verify_temp_dir_marker(copy);
  ASSERT_FALSE(verified);
  EXPECT_NE(verified.error().find("does not verify"), std::string::npos) << verified.error();
}

TEST_F(EngineState, MovedDirDoesNotVerify)
{
  auto dir = make_temp_dir();
  auto moved = jobs() / "moved";
  fs::rename(dir, moved);
  EXPECT_FALSE(verify_temp_dir_marker(moved));
  fs::rename(moved, dir);
  EXPECT_TRUE(verify_temp_dir_marker(dir));
}

TEST_F(EngineState, EditedMarkerDoesNotVerify)
{
  auto dir = make_temp_dir();
  auto marker = marker_of(dir);
  auto text = *util::read_file(marker);
  text[0] = text[0] == 'a' ? 'b' : 'a';
  std::ofstream(marker, std::ios::trunc) << text;
  EXPECT_FALSE(verify_temp_dir_marker(dir));

  fs::remove(marker);
  auto missing = verify_temp_dir_marker(dir);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("no marker"), std::string::npos) << missing.error();

  // A marker that is a symlink to a real one is not read.
  auto real = make_temp_dir();
  fs::create_symlink(marker_of(real), marker);
  EXPECT_FALSE(verify_temp_dir_marker(dir));
}

TEST_F(EngineState, SymlinkDoesNotVerify)
{
  auto dir = make_temp_dir();
  auto link = jobs() / "link";
  fs::create_directory_symlink(dir, link);
  auto verified = verify_temp_dir_marker(link);
  ASSERT_FALSE(verified);
  EXPECT_NE(verified.error().find("symbolic link"), std::string::npos) << verified.error();
  EXPECT_FALSE(verify_temp_dir_marker(link.string() + "/"));
  EXPECT_FALSE(verify_temp_dir_marker(link.string() + "//"));
  EXPECT_TRUE(verify_temp_dir_marker(dir));
}

TEST_F(EngineState, SymlinkSpelledWithDotDoesNotVerify)
{
  auto dir = make_temp_dir();
  auto link = jobs() / "link";
  fs::create_directory_symlink(dir, link);
  for (const auto& spelling : {link / ".", fs::path(link.string() + "/./")}) {
    if (verify_temp_dir_marker(spelling)) {
      FAIL() << "regression: verify_temp_dir_marker(\"" << spelling.string()
                   << "\") verifies the directory the symlink points to (only trailing "
                      "slashes are stripped before lstat)";
    }
    EXPECT_FALSE(verify_temp_dir_marker(spelling)) << spelling;
  }
}

TEST_F(EngineState, PlainDirsAndFilesDoNotVerify)
{
  fs::create_directory(jobs() / "plain");
  EXPECT_FALSE(verify_temp_dir_marker(jobs() / "plain"));
  std::ofstream(jobs() / "file") << "x";
  EXPECT_FALSE(verify_temp_dir_marker(jobs() / "file"));
  EXPECT_FALSE(verify_temp_dir_marker(jobs() / "missing"));
  EXPECT_FALSE(verify_temp_dir_marker("/"));
}

TEST_F(EngineState, CreateFailsForAMissingParent)
{
  auto made = create_marked_temp_dir(jobs() / "missing");
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().find("missing"), std::string::npos);
}

} // namespace

} // namespace sandbox::compiler

namespace sandbox::compiler {
namespace {

// Engines started at the same moment on a fresh state dir agree on one key:
// none reads another's key before it is whole.
TEST(EngineKey, ConcurrentEnginesAgreeOnOneKey)
{
  auto dir = util::TempDir::create("/tmp", "engine-key-race-");
  ASSERT_TRUE(dir) << dir.error();
  int start[2];
  int results[2];
  ASSERT_EQ(::pipe(start), 0);
  ASSERT_EQ(::pipe(results), 0);
  std::vector<pid_t> engines;
  for (int i = 0; i < 16; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(start[1]);
      ::setenv("SANDBOX_STATE_DIR", (dir->path() / "state").c_str(), 1);
      char go = 0;
      (void)::read(start[0], &go, 1); // returns when the parent closes its end
      auto key = engine_key();
      std::string line = key ? util::sha256_hex(*key) + (key->size() == 32 ? "" : " short") : "error " + key.error();
      line = line.substr(0, 200) + "\n";
      (void)::write(results[1], line.data(), line.size());
      ::_exit(0);
    }
    engines.push_back(pid);
  }
  ::close(start[0]);
  ::close(results[1]);
  ::close(start[1]); // all at once
  std::string text;
  char chunk[4096];
  ssize_t n;
  while ((n = ::read(results[0], chunk, sizeof chunk)) > 0) {
    text.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(results[0]);
  for (pid_t pid : engines) {
    ::waitpid(pid, nullptr, 0);
  }
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 16u) << text;
  for (const auto& line : lines) {
    EXPECT_EQ(line, lines.front()) << text;
    EXPECT_EQ(line.size(), 64u) << line;
  }
  // Only the key is left in the state dir: no staged copies behind.
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir->path() / "state")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"key"});
}

} // namespace
} // namespace sandbox::compiler
