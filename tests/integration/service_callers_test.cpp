// A service started as root and used by another user: every operation that
// takes a path acts with the caller's rights. Root-only files, root-only
// directories, a symlink into one, an output directory the caller cannot
// write and another caller's temp dir are refused with no content in the
// answer and nothing written; the caller's own files work, and the result is
// the caller's. Who may connect, and one caller cannot take every job slot.

#include "service_support.h"

#include <grp.h>
#include <fstream>
#include <sys/stat.h>

namespace sandbox::test {
namespace {

constexpr uid_t kCallerUid = 65534; // nobody
constexpr gid_t kCallerGid = 65534;
const std::string kSecret = "TOPSECRET-4f1c9e";

// A child process running as uid/gid that sends `request` on a new connection
// and writes the answer to `answer_fd` ({"connect_failed": true} when the
// connection was refused).
pid_t start_call_as(uid_t uid, gid_t gid, const fs::path& socket, const json& request, int answer_fd,
                    int timeout_ms)
{
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
      ::_exit(3);
    }
    Client client(socket);
    std::string out = client.connected ? client.call(request, timeout_ms).dump() : R"({"connect_failed":true})";
    ssize_t ignored = ::write(answer_fd, out.data(), out.size());
    (void)ignored;
    ::_exit(0);
  }
  return pid;
}

// Sends `request` as uid/gid and returns the answer (discarded when none came).
json call_as(uid_t uid, gid_t gid, const fs::path& socket, const json& request, int timeout_ms = 120'000)
{
  int fds[2];
  if (::pipe(fds) != 0) {
    return json::value_t::discarded;
  }
  pid_t pid = start_call_as(uid, gid, socket, request, fds[1], timeout_ms);
  ::close(fds[1]);
  std::string text;
  char chunk[65536];
  ssize_t n;
  while ((n = ::read(fds[0], chunk, sizeof chunk)) > 0) {
    text.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return json::parse(text, nullptr, false);
}

class ServiceCallers : public ServiceTest {
protected:
  void SetUp() override
  {
    ServiceTest::SetUp();
    if (::geteuid() != 0) {
      GTEST_SKIP() << "these tests start the service as root and connect as another user";
    }
    // The other user must reach the socket, its own files and its results.
    for (fs::path dir = scratch(); dir != dir.root_path(); dir = dir.parent_path()) {
      struct stat st {};
      if (dir != scratch() && (::stat(dir.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH))) {
        GTEST_SKIP() << dir << " is not searchable by other users";
      }
    }
    fs::permissions(scratch(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    fs::permissions(job_root(), fs::perms::all | fs::perms::sticky_bit);

    // Root's: a private project, a private BEAM, a directory nobody else may write.
    m_root_project = make_sandbox("root_project", {{"lib/secret.ex", "defmodule Secret do\n  def value, do: \"" +
                                                                         kSecret + "\"\nend\n"}});
    fs::permissions(m_root_project, fs::perms::owner_all);
    fs::permissions(m_root_project / "lib" / "secret.ex", fs::perms::owner_read | fs::perms::owner_write);
    m_root_beam_dir = scratch() / "root_beams";
    fs::create_directories(m_root_beam_dir);
    fs::permissions(m_root_beam_dir, fs::perms::owner_all);
    m_root_output = scratch() / "root_output";
    fs::create_directories(m_root_output);
    fs::permissions(m_root_output, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                     fs::perms::others_read | fs::perms::others_exec);

    // The caller's: a home with a project, an output dir, and a link to root's project.
    m_home = scratch() / "home";
    fs::create_directories(m_home / "project" / "lib");
    write_file(m_home / "project" / "lib" / "mine.ex", "defmodule Mine do\n  def hi, do: :hi\nend\n");
    fs::create_symlink(m_root_project, m_home / "link");
    fs::create_directories(m_home / "out");
    give_to_caller(m_home);
  }

  static void write_file(const fs::path& path, const std::string& text)
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }

  static void give_to_caller(const fs::path& dir)
  {
    ::lchown(dir.c_str(), kCallerUid, kCallerGid);
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
      ::lchown(entry.path().c_str(), kCallerUid, kCallerGid);
    }
  }

  json as_caller(const json& request, int timeout_ms = 120'000)
  {
    return call_as(kCallerUid, kCallerGid, socket_path(), request, timeout_ms);
  }

  // A root-only BEAM, compiled by root through the service.
  fs::path root_beam()
  {
    Client root(socket_path());
    auto answer = root.call({{"op", "compile_in_process"},
                             {"source", m_root_project.string()},
                             {"output", m_root_beam_dir.string()}});
    EXPECT_TRUE(answer.value("ok", false)) << answer.dump();
    auto beam = m_root_beam_dir / "Elixir.Secret.beam";
    ::chmod(beam.c_str(), 0600);
    return beam;
  }

  static void expect_denied(const json& answer, const std::string& operation)
  {
    ASSERT_FALSE(answer.is_discarded());
    ASSERT_FALSE(answer.value("ok", true)) << answer.dump();
    EXPECT_EQ(answer["error"].value("type", ""), "permission_denied") << answer.dump();
    EXPECT_EQ(answer["error"].value("operation", ""), operation) << answer.dump();
    EXPECT_EQ(answer.dump().find(kSecret), std::string::npos) << answer.dump();
    EXPECT_EQ(answer.dump().find("defmodule"), std::string::npos) << answer.dump();
  }

  fs::path m_root_project;
  fs::path m_root_beam_dir;
  fs::path m_root_output;
  fs::path m_home;
};

TEST_F(ServiceCallers, RootOnlySourcesAreRefusedForEveryOperation)
{
  start({"--socket-mode", "0666"});
  const auto root_project = m_root_project.string();
  const auto link = (m_home / "link").string();
  const auto secret_file = (m_root_project / "lib" / "secret.ex").string();
  for (const auto& path : {root_project, link}) {
    SCOPED_TRACE(path);
    expect_denied(as_caller({{"op", "scan"}, {"path", path}}), "read");
    expect_denied(as_caller({{"op", "compile"}, {"path", path}, {"options", {{"compiler", "elixirc"}}}}), "read");
    expect_denied(as_caller({{"op", "incremental"}, {"path", path}}), "read");
    expect_denied(as_caller({{"op", "cache_stats"}, {"path", path}}), "read");
    expect_denied(as_caller({{"op", "cache_clear"}, {"path", path}}), "read");
    expect_denied(as_caller({{"op", "compile_in_process"}, {"source", path}, {"output", (m_home / "out").string()}}),
                  "read");
  }
  expect_denied(as_caller({{"op", "compile_file"}, {"file", secret_file}}), "read");
  auto beam = root_beam().string();
  expect_denied(as_caller({{"op", "validate"}, {"beam_files", {beam}}}), "read");
  expect_denied(as_caller({{"op", "load_beam_files"}, {"beam_files", {beam}}}), "read");
  // Nothing was written for the caller.
  EXPECT_TRUE(fs::is_empty(m_home / "out"));
}

TEST_F(ServiceCallers, OutputsOnlyWhereTheCallerMayWrite)
{
  start({"--socket-mode", "0666"});
  auto project = (m_home / "project").string();
  expect_denied(as_caller({{"op", "compile_in_process"}, {"source", project}, {"output", m_root_output.string()}}),
                "write");
  expect_denied(as_caller({{"op", "compile_string"},
                           {"code", "defmodule Planted do\nend\n"},
                           {"filename", "planted.ex"},
                           {"output", m_root_output.string()}}),
                "write");
  EXPECT_TRUE(fs::is_empty(m_root_output));
  // A directory the engine would create for the caller: only where the caller may.
  expect_denied(as_caller({{"op", "compile_in_process"},
                           {"source", project},
                           {"output", (m_root_output / "made").string()}}),
                "write");
  EXPECT_FALSE(fs::exists(m_root_output / "made"));
  // The engine's temp root is the service's to choose.
  auto answer = as_caller({{"op", "compile"}, {"path", project}, {"options", {{"temp_dir", m_root_output.string()}}}});
  EXPECT_EQ(answer["error"].value("type", ""), "invalid_option") << answer.dump();
  // A mirror would be read with the service's rights and from its network,
  // not the caller's: other users get the operator's.
  for (const auto& named : {m_root_output.string(), std::string("http://127.0.0.1:9/")}) {
    auto mirror = as_caller({{"op", "compile"}, {"path", project},
                             {"options", {{"package_mirror", named}}}});
    EXPECT_EQ(mirror["error"].value("option", ""), "package_mirror") << mirror.dump();
  }
  // A prefix would run the caller's programs as the service: other users name
  // a toolchain the operator registered.
  auto prefix = as_caller({{"op", "compile"}, {"path", project},
                           {"options", {{"toolchain", m_root_output.string()}}}});
  EXPECT_EQ(prefix["error"].value("option", ""), "toolchain") << prefix.dump();
}

TEST_F(ServiceCallers, TheCallersOwnFilesWorkAndTheResultIsTheCallers)
{
  start({"--socket-mode", "0666"});
  auto project = (m_home / "project").string();
  auto compiled = as_caller({{"op", "compile_in_process"}, {"source", project}, {"output", (m_home / "out").string()}});
  ASSERT_TRUE(compiled.value("ok", false)) << compiled.dump();
  auto beam = m_home / "out" / "Elixir.Mine.beam";
  struct stat st {};
  ASSERT_EQ(::stat(beam.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kCallerUid);
  // The answer names the caller's paths, never the engine's staging area.
  EXPECT_NE(compiled.dump().find(beam.string()), std::string::npos) << compiled.dump();
  EXPECT_EQ(compiled.dump().find(state_dir().string()), std::string::npos) << compiled.dump();

  auto validated = as_caller({{"op", "validate"}, {"beam_files", {beam.string()}}});
  EXPECT_TRUE(validated.value("ok", false)) << validated.dump();
  auto loaded = as_caller({{"op", "load_beam_files"}, {"beam_files", {beam.string()}}});
  ASSERT_TRUE(loaded.value("ok", false)) << loaded.dump();
  EXPECT_EQ(loaded["modules"][0].value("beam_file", ""), beam.string());

  auto full = as_caller({{"op", "compile"}, {"path", project}, {"options", {{"compiler", "elixirc"}}}});
  ASSERT_TRUE(full.value("ok", false)) << full.dump();
  fs::path temp_dir = full.value("temp_dir", "");
  ASSERT_TRUE(fs::is_directory(temp_dir));
  // Every file of the result belongs to the caller.
  ASSERT_EQ(::lstat(temp_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kCallerUid);
  for (const auto& entry : fs::recursive_directory_iterator(temp_dir)) {
    ASSERT_EQ(::lstat(entry.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kCallerUid) << entry.path();
  }
  auto scan = as_caller({{"op", "scan"}, {"path", project}});
  EXPECT_TRUE(scan.value("ok", false)) << scan.dump();
  auto incremental = as_caller({{"op", "incremental"}, {"path", project}, {"options", {{"compiler", "elixirc"}}}});
  ASSERT_TRUE(incremental.value("ok", false)) << incremental.dump();
  auto again = as_caller({{"op", "incremental"}, {"path", project}, {"options", {{"compiler", "elixirc"}}}});
  ASSERT_TRUE(again.value("ok", false)) << again.dump();
  EXPECT_TRUE(again.value("cache_hit", false)) << again.dump();
  // The caller's own project was never written to (its cache lives with the engine).
  EXPECT_FALSE(fs::exists(m_home / "project" / ".sandbox_cache"));

  auto cleaned = as_caller({{"op", "cleanup"}, {"temp_dir", temp_dir.string()}});
  EXPECT_TRUE(cleaned.value("ok", false)) << cleaned.dump();
  EXPECT_FALSE(fs::exists(temp_dir));
}

TEST_F(ServiceCallers, AnotherCallersTempDirIsNotCleanedUp)
{
  start({"--socket-mode", "0666"});
  Client root(socket_path());
  auto rooted = root.call({{"op", "compile"}, {"path", m_root_project.string()}, {"options", {{"compiler", "elixirc"}}}});
  ASSERT_TRUE(rooted.value("ok", false)) << rooted.dump();
  fs::path temp_dir = rooted.value("temp_dir", "");
  expect_denied(as_caller({{"op", "cleanup"}, {"temp_dir", temp_dir.string()}}), "cleanup");
  EXPECT_TRUE(fs::is_directory(temp_dir));
}

TEST_F(ServiceCallers, ACallerOutsideTheAllowListIsRefusedAtConnect)
{
  start({"--socket-mode", "0666", "--allow-users", "daemon,1234567", "--allow-groups", "4242"});
  auto answer = as_caller({{"op", "ping"}});
  ASSERT_FALSE(answer.is_discarded());
  EXPECT_EQ(answer["error"].value("type", ""), "caller_not_allowed") << answer.dump();
  Client root(socket_path());
  EXPECT_TRUE(root.call({{"op", "ping"}}).value("ok", false)); // root always may
  EXPECT_NE(read_text(scratch() / "serve.log").find("uid 65534"), std::string::npos);
}

TEST_F(ServiceCallers, AnUnknownUserOrGroupIsAUsageError)
{
  for (const char* flag : {"--allow-users", "--allow-groups"}) {
    auto run = sandbox({"serve", "--socket", socket_path().string(), flag, "no-such-name-7f3a"});
    EXPECT_EQ(run.exit_code, 2) << flag;
    EXPECT_NE(run.err.find("no-such-name-7f3a"), std::string::npos) << run.err;
    EXPECT_FALSE(fs::exists(socket_path()));
  }
}

TEST_F(ServiceCallers, AFloodingCallerDoesNotStarveAnother)
{
  start({"--socket-mode", "0666", "--jobs", "2", "--queue", "0"});
  auto marker = adversarial::random_token("SERVESHARE");
  auto slow = slow_sandbox(marker);
  give_to_caller(slow);
  // The caller's first job holds its one share (half of jobs + queue)...
  int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_t flooding = start_call_as(kCallerUid, kCallerGid, socket_path(), compile_request(slow), null_fd, 300'000);
  ::close(null_fd);
  struct Reap {
    pid_t pid;
    ~Reap()
    {
      ::kill(pid, SIGKILL); // its connection closes: the service cancels the job
      ::waitpid(pid, nullptr, 0);
    }
  } reap{flooding};
  ASSERT_TRUE(wait_for_process(marker)) << read_text(scratch() / "serve.log");
  // ...its second is busy for it alone...
  auto second = as_caller(compile_request(slow));
  EXPECT_EQ(second["error"].value("type", ""), "busy") << second.dump();
  EXPECT_EQ(second["error"].value("caller_share", 0), 1) << second.dump();
  // ...while another caller is still served at once.
  Client root(socket_path());
  auto served = root.call(compile_request(small_sandbox("other")));
  EXPECT_TRUE(served.value("ok", false)) << served.dump();
  ::kill(flooding, SIGKILL);
  EXPECT_TRUE(wait_until_gone(marker, 20'000));
}

} // namespace
} // namespace sandbox::test
