#pragma once
// Shared by the tests of `sandbox serve`: a client of its socket and a fixture
// that starts and stops a service with the test's own state and temp dirs.

#include "adversarial.h"
#include "support.h"

#include "util/fd.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sandbox::test {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Processes with `marker` in their argv (a process that ends meanwhile is
// simply not there).
inline std::vector<pid_t> processes_now(const std::string& marker)
{
  return processes_with_argument(marker);
}

// Waits up to `timeout_ms` for every process with `marker` in its argv to end.
inline bool wait_until_gone(const std::string& marker, int timeout_ms = 5000)
{
  auto start = Clock::now();
  while (!processes_now(marker).empty()) {
    if (std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() > timeout_ms) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

inline std::int64_t ms_since(Clock::time_point start)
{
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// One connection to the service.
class Client {
public:
  explicit Client(const fs::path& socket)
  {
    m_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    connected = ::connect(m_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }

  bool send_raw(const std::string& bytes)
  {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      auto n = ::send(m_fd.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool send(const json& request) { return send_raw(request.dump() + "\n"); }

  // The next response line; a discarded value on timeout or EOF.
  json receive(int timeout_ms = 120'000)
  {
    auto start = Clock::now();
    while (true) {
      auto newline = m_buffer.find('\n');
      if (newline != std::string::npos) {
        auto line = m_buffer.substr(0, newline);
        m_buffer.erase(0, newline + 1);
        return json::parse(line, nullptr, false);
      }
      auto left = timeout_ms - ms_since(start);
      pollfd pfd{m_fd.get(), POLLIN, 0};
      if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
        return json::value_t::discarded;
      }
      char chunk[65536];
      auto n = ::read(m_fd.get(), chunk, sizeof chunk);
      if (n <= 0) {
        eof = true;
        return json::value_t::discarded;
      }
      m_buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }

  json call(const json& request, int timeout_ms = 120'000)
  {
    return send(request) ? receive(timeout_ms) : json(json::value_t::discarded);
  }

  void close() { m_fd.reset(); }

  bool connected = false;
  bool eof = false;

private:
  util::Fd m_fd;
  std::string m_buffer;
};

// Starts `args` (a `sandbox serve` command line) with this process's
// environment, SANDBOX_STATE_DIR and TMPDIR replaced, stderr appended to
// `log`; the pid, or -1.
inline pid_t spawn_service(const std::vector<std::string>& args, const fs::path& state, const fs::path& tmp,
                           const fs::path& log)
{
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string item = *e;
    if (!item.starts_with("SANDBOX_STATE_DIR=") && !item.starts_with("TMPDIR=")) {
      env_strings.push_back(item);
    }
  }
  fs::create_directories(tmp);
  env_strings.push_back("SANDBOX_STATE_DIR=" + state.string());
  env_strings.push_back("TMPDIR=" + tmp.string());
  std::vector<std::string> arg_strings = args;
  std::vector<char*> argv, envp;
  for (auto& a : arg_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) {
    pid = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

class ServiceTest : public SandboxTest {
protected:
  void SetUp() override { m_cgroups_before = adversarial::job_cgroups(); }

  void TearDown() override
  {
    stop();
    // Only this test's services: other tests running beside it kill engines
    // of their own, whose cgroups the next engine removes.
    std::vector<std::string> leaked;
    for (const auto& name : adversarial::leaked_cgroups(m_cgroups_before)) {
      for (pid_t pid : m_services) {
        if (fs::path(name).filename().string().starts_with("sandbox-job-" + std::to_string(pid) + "-")) {
          leaked.push_back(name);
        }
      }
    }
    EXPECT_EQ(leaked, std::vector<std::string>{});
  }

  fs::path socket_path() const { return scratch() / "serve.sock"; }

  void start(const std::vector<std::string>& extra = {})
  {
    std::vector<std::string> args = {sandbox_binary().string(), "serve", "--socket", socket_path().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    m_pid = spawn_service(args, state_dir(), job_root(), scratch() / "serve.log");
    ASSERT_GT(m_pid, 0);
    m_services.push_back(m_pid);
    for (int i = 0; i < 200; ++i) {
      if (Client(socket_path()).connected) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "the service did not listen: " << read_text(scratch() / "serve.log");
  }

  // The service writes a job's log line after the job's processes and temp dir
  // are gone, so a test that saw those go waits for the line too.
  bool log_shows(const std::string& text, int timeout_ms = 10'000) const
  {
    auto start = Clock::now();
    while (read_text(scratch() / "serve.log").find(text) == std::string::npos) {
      if (ms_since(start) > timeout_ms) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  // SIGTERM and wait; returns the exit status (-1 when it did not stop in time).
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

  fs::path small_sandbox(const std::string& name)
  {
    return make_sandbox(name, {{"lib/" + name + ".ex", "defmodule " + std::string(1, char(std::toupper(name[0]))) +
                                                        name.substr(1) + " do\n  def hi, do: :hi\nend\n"}});
  }

  // A module body that starts `sh -c "read x" MARKER` (blocked on its stdin, a
  // pipe nobody writes) and waits for it.
  fs::path slow_sandbox(const std::string& marker)
  {
    return make_sandbox("slow", {{"lib/slow.ex", "defmodule Slow do\n  System.cmd(\"sh\", [\"-c\", \"read x\", \"" +
                                                  marker + "\"])\nend\n"}});
  }

  // The slow job starts a command from its module body, which the scanner
  // rejects before compiling; these tests are about the service and the jail,
  // so the scan is off.
  json compile_request(const fs::path& path, int timeout_ms = 120'000)
  {
    return {{"op", "compile"},
            {"path", path.string()},
            {"options", {{"compiler", "elixirc"}, {"timeout", timeout_ms}, {"security_scan", false}}}};
  }

  static bool wait_for_process(const std::string& marker)
  {
    for (int i = 0; i < 1200 && processes_now(marker).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return !processes_now(marker).empty();
  }

  // Compile jobs' temp dirs; the warm pool's worker dirs (sandbox-worker-*)
  // live as long as the service and are not jobs.
  std::vector<fs::path> job_temp_dirs() const
  {
    auto entries = entries_with_prefix(job_root(), "sandbox-");
    std::erase_if(entries, [](const fs::path& entry) {
      return entry.filename().string().starts_with("sandbox-worker-");
    });
    return entries;
  }

private:
  pid_t m_pid = -1;
  std::vector<pid_t> m_services; // every service this test started
  int m_status = 0;
  std::set<std::string> m_cgroups_before;
};

} // namespace sandbox::test
