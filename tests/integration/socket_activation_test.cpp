// `sandbox serve` under systemd's socket activation: the listening socket is
// passed exactly as systemd passes it (fd 3, LISTEN_FDS=1, LISTEN_PID set to
// the server's own pid after fork), a real compile goes through it, and the
// socket file, which the socket unit owns, is left in place.

#include "service_support.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <optional>

namespace sandbox::test {

namespace {

class SocketActivation : public SandboxTest {
protected:
  void TearDown() override { stop(); }

  // A listening socket bound at `path`, as a .socket unit makes it.
  static util::Fd listening_socket(const fs::path& path)
  {
    util::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd.get(), 16) != 0) {
      fd.reset();
    }
    return fd;
  }

  // fork; in the child, `passed` on fd 3 and the LISTEN_* variables naming the
  // child itself, then exec `sandbox serve ARGS`. Only async-signal-safe calls
  // run after fork: everything else is prepared before it.
  void start_activated(int passed, const std::vector<std::string>& args = {})
  {
    std::vector<std::string> argv_strings = {sandbox_binary().string(), "serve"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      std::string item = *e;
      if (!item.starts_with("SANDBOX_STATE_DIR=") && !item.starts_with("TMPDIR=") && !item.starts_with("LISTEN_")) {
        env_strings.push_back(item);
      }
    }
    fs::create_directories(job_root());
    env_strings.push_back("SANDBOX_STATE_DIR=" + state_dir().string());
    env_strings.push_back("TMPDIR=" + job_root().string());
    env_strings.push_back("LISTEN_FDS=1");
    env_strings.push_back("LISTEN_PID=" + std::string(24, '\0')); // filled in by the child
    std::vector<char*> argv, envp;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    char* listen_pid = env_strings.back().data() + std::strlen("LISTEN_PID=");
    auto log = (scratch() / "serve.log").string();
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ASSERT_GE(log_fd, 0);

    m_pid = ::fork();
    ASSERT_GE(m_pid, 0);
    if (m_pid == 0) {
      char digits[24];
      int n = 0;
      for (auto pid = static_cast<long>(::getpid()); pid > 0; pid /= 10) {
        digits[n++] = static_cast<char>('0' + pid % 10);
      }
      for (int i = 0; i < n; ++i) {
        listen_pid[i] = digits[n - 1 - i];
      }
      listen_pid[n] = '\0';
      // fd 3 without close-on-exec, as systemd leaves it (dup2 clears the
      // flag, except when the socket already is fd 3).
      if (::dup2(log_fd, 2) < 0 || (passed == 3 ? ::fcntl(3, F_SETFD, 0) : ::dup2(passed, 3)) < 0) {
        ::_exit(127);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(log_fd);
  }

  int stop(int timeout_ms = 30'000)
  {
    if (m_pid <= 0) {
      return m_status;
    }
    ::kill(m_pid, SIGTERM);
    auto start = Clock::now();
    int status = 0;
    while (::waitpid(m_pid, &status, WNOHANG) == 0) {
      if (ms_since(start) > timeout_ms) {
        ::kill(m_pid, SIGKILL);
        ::waitpid(m_pid, &status, 0);
        m_pid = -1;
        return m_status = -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    m_pid = -1;
    return m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // The exit status once the server ends by itself within `timeout_ms`.
  std::optional<int> exit_status(int timeout_ms)
  {
    auto start = Clock::now();
    int status = 0;
    while (::waitpid(m_pid, &status, WNOHANG) == 0) {
      if (ms_since(start) > timeout_ms) {
        return std::nullopt;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    m_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string log() const { return read_text(scratch() / "serve.log"); }

  pid_t m_pid = -1;
  int m_status = 0;
};

TEST_F(SocketActivation, ServesACompileOnThePassedSocketAndLeavesItsFile)
{
  auto path = scratch() / "activated.sock";
  auto listener = listening_socket(path);
  ASSERT_TRUE(listener) << std::strerror(errno);
  struct stat before{};
  ASSERT_EQ(::lstat(path.c_str(), &before), 0);
  // No --socket: under activation the socket comes from systemd alone.
  start_activated(listener.get());
  // The kernel queues connections on the listening socket before the server
  // accepts, so the first request simply waits for the server to be up.
  listener.reset();

  auto sandbox_path = make_sandbox("activated", {{"lib/activated.ex", "defmodule Activated do\n  def hi, do: :hi\nend\n"}});
  Client client(path);
  ASSERT_TRUE(client.connected);
  auto pong = client.call({{"op", "ping"}}, 60'000);
  ASSERT_EQ(pong.value("ok", false), true) << pong << "\n" << log();
  EXPECT_EQ(pong.value("pid", 0), m_pid);
  auto response = client.call({{"op", "compile"},
                               {"path", sandbox_path.string()},
                               {"options", {{"compiler", "elixirc"}, {"timeout", 60'000}}}});
  ASSERT_TRUE(response.is_object()) << log();
  ASSERT_EQ(response.value("ok", false), true) << response.dump(2) << "\n" << log();
  EXPECT_EQ(beam_names(response), std::vector<std::string>{"Elixir.Activated.beam"});
  client.close();

  EXPECT_NE(log().find("listening on " + path.string() + " (socket activation)"), std::string::npos) << log();
  // The socket unit owns the file: not replaced at start, not removed at stop.
  struct stat during{};
  ASSERT_EQ(::lstat(path.c_str(), &during), 0);
  EXPECT_EQ(during.st_ino, before.st_ino);
  EXPECT_EQ(stop(), 0) << log();
  struct stat after{};
  ASSERT_EQ(::lstat(path.c_str(), &after), 0) << "the activated server removed the socket file";
  EXPECT_EQ(after.st_ino, before.st_ino);
}

TEST_F(SocketActivation, GivenSocketPathIsIgnoredForThePassedOne)
{
  auto path = scratch() / "activated.sock";
  auto other = scratch() / "other.sock";
  auto listener = listening_socket(path);
  ASSERT_TRUE(listener);
  start_activated(listener.get(), {"--socket", other.string()});
  listener.reset();
  Client client(path);
  ASSERT_TRUE(client.connected);
  auto pong = client.call({{"op", "ping"}}, 60'000);
  ASSERT_EQ(pong.value("ok", false), true) << log();
  EXPECT_FALSE(fs::exists(other));
  EXPECT_NE(log().find("--socket " + other.string() + " is ignored"), std::string::npos) << log();
}

TEST_F(SocketActivation, RefusesAPassedFdThatIsNotAListeningSocket)
{
  auto file = scratch() / "not-a-socket";
  { std::ofstream(file) << "x"; }
  util::Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  start_activated(fd.get());
  EXPECT_EQ(exit_status(30'000), 1) << log();
  EXPECT_NE(log().find("fd 3 is not a socket"), std::string::npos) << log();

  // A Unix stream socket that is not listening is refused too.
  util::Fd unbound(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  start_activated(unbound.get());
  EXPECT_EQ(exit_status(30'000), 1) << log();
  EXPECT_NE(log().find("not a listening Unix stream socket"), std::string::npos) << log();
}

TEST_F(SocketActivation, WithoutActivationSocketIsRequired)
{
  auto run = sandbox({"serve"}, with_env({{"LISTEN_FDS", std::nullopt}, {"LISTEN_PID", std::nullopt}}));
  EXPECT_EQ(run.exit_code, 2) << run.describe();
  EXPECT_NE(run.err.find("--socket is required"), std::string::npos) << run.describe();
}

} // namespace

} // namespace sandbox::test
