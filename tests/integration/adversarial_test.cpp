// Adversarial module bodies: real Elixir sandboxes whose compile-time code
// attacks the host (secrets, writes, network, processes, resources). Each
// case checks the typed result and that the host is unaffected.

#include "adversarial.h"
#include "support.h"
#include "util/fs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <random>
#include <set>
#include <thread>

namespace sandbox::test::adversarial {

// A token no other file or process on the machine contains.
std::string random_token(const std::string& prefix)
{
  std::random_device device;
  std::uniform_int_distribution<std::uint64_t> dist;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(dist(device)));
  return prefix + buffer;
}

// Job cgroup names (the engine's prefix) under every controller hierarchy.
std::set<std::string> job_cgroups()
{
  std::set<std::string> names;
  std::error_code ec;
  std::vector<fs::path> roots = {"/sys/fs/cgroup"};
  for (const auto& entry : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    roots.push_back(entry.path());
  }
  for (const auto& root : roots) {
    std::error_code list_ec;
    for (const auto& entry : fs::directory_iterator(root, list_ec)) {
      auto name = entry.path().filename().string();
      if (name.starts_with("sandbox-job-")) {
        names.insert(entry.path().string());
      }
    }
  }
  return names;
}

// Whether the engine named in a job cgroup (sandbox-job-PID-N) still runs.
bool engine_alive(const std::string& cgroup)
{
  auto name = fs::path(cgroup).filename().string().substr(std::string("sandbox-job-").size());
  auto pid = std::atoll(name.substr(0, name.find('-')).c_str());
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0;
}

// Job cgroups that appeared since `before` and whose engine is gone.
std::vector<std::string> leaked_cgroups(const std::set<std::string>& before)
{
  std::vector<std::string> leaked;
  for (const auto& name : job_cgroups()) {
    if (!before.contains(name) && !engine_alive(name)) {
      leaked.push_back(name);
    }
  }
  return leaked;
}

// A socket bound to the loopback address of `family`, non-blocking.
class Listener {
public:
  Listener(int family, int type) : m_type(type)
  {
    m_fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m_fd < 0) {
      return;
    }
    sockaddr_storage address{};
    socklen_t length = 0;
    if (family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&address);
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof *in;
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = in6addr_loopback;
      length = sizeof *in6;
    }
    if (::bind(m_fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        (type == SOCK_STREAM && ::listen(m_fd, 16) != 0) ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ::close(m_fd);
      m_fd = -1;
      return;
    }
    m_port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener()
  {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }
  [[nodiscard]] bool ok() const { return m_fd >= 0; }
  [[nodiscard]] int port() const { return m_port; }
  // A connection or datagram arrived (short poll).
  [[nodiscard]] bool received() const
  {
    pollfd item{m_fd, POLLIN, 0};
    if (::poll(&item, 1, 300) <= 0) {
      return false;
    }
    if (m_type == SOCK_STREAM) {
      int client = ::accept(m_fd, nullptr, nullptr);
      if (client >= 0) {
        ::close(client);
        return true;
      }
      return false;
    }
    char buffer[64];
    return ::recv(m_fd, buffer, sizeof buffer, 0) >= 0;
  }

private:
  int m_fd = -1;
  int m_type;
  int m_port = 0;
};

// Waits up to 3 s for every process with `marker` in its argv to end; kills
// and reports the ones left.
bool wait_until_gone(const std::string& marker)
{
  for (int i = 0; i < 30; ++i) {
    if (processes_with_argument(marker).empty()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (pid_t pid : processes_with_argument(marker)) {
    ::kill(pid, SIGKILL);
  }
  return false;
}

std::string attack_module_source(const std::string& body)
{
  return "defmodule Attack do\n" + body + "  def ok, do: :ok\nend\n";
}

void LeakCheckedTest::SetUp()
{
  m_cgroups_before = job_cgroups();
}

void LeakCheckedTest::TearDown()
{
  // A successful result keeps its temp dir (beam_files point into it); a
  // failed one must not.
  if (!m_last_ok) {
    EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty())
        << "a failed job left its temp dir";
  }
  if (!fs::exists("/sys/fs/cgroup/pids") && !fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
    std::cout << "[ note ] job cgroup check skipped: no cgroup hierarchy is mounted\n";
    return;
  }
  // Only this test's commands: other tests running beside it kill engines of
  // their own, whose cgroups the next engine removes.
  auto ours = [&] {
    std::vector<std::string> out;
    for (const auto& name : leaked_cgroups(m_cgroups_before)) {
      auto base = fs::path(name).filename().string();
      for (pid_t pid : ran()) {
        if (base.starts_with("sandbox-job-" + std::to_string(pid) + "-")) out.push_back(name);
      }
    }
    return out;
  };
  std::vector<std::string> leaked;
  for (int i = 0; i < 20; ++i) {
    leaked = ours();
    if (leaked.empty()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& name : leaked) {
    ADD_FAILURE() << "job cgroup left behind: " << name;
  }
}

RunResult LeakCheckedTest::run_compile(const fs::path& path, const std::vector<std::string>& args,
                                       RunOptions options) const
{
  options.timeout_ms = 90'000;
  // These suites test the jail: the code must be contained even when the
  // security scanner (which would reject most of it first) is fooled or off.
  auto all = args;
  if (std::find(all.begin(), all.end(), "--no-security-scan") == all.end()) {
    all.push_back("--no-security-scan");
  }
  auto run = compile(path, all, std::move(options));
  m_last_ok = run.exit_code == 0;
  return run;
}

RunResult LeakCheckedTest::attack(const std::string& body, const std::vector<std::string>& args,
                                  RunOptions options)
{
  auto path = make_sandbox("attack" + std::to_string(m_count++),
                           {{"lib/attack.ex", attack_module_source(body)}});
  std::vector<std::string> all = {"--compiler", "elixirc"};
  all.insert(all.end(), args.begin(), args.end());
  return run_compile(path, all, std::move(options));
}

// Each attack is a module body compiled with elixirc.
class AttackTest : public LeakCheckedTest {
protected:
  static std::string module_source(const std::string& body) { return attack_module_source(body); }

  RunResult compile_attack(const fs::path& path, const std::vector<std::string>& args = {},
                           RunOptions options = {}) const
  {
    std::vector<std::string> all = {"--compiler", "elixirc"};
    all.insert(all.end(), args.begin(), args.end());
    return run_compile(path, all, std::move(options));
  }
};

} // namespace sandbox::test::adversarial

namespace sandbox::test {

namespace {

using namespace adversarial;

// error.type of a failure result, "" otherwise.
std::string error_type(const RunResult& run)
{
  auto result = run.json();
  if (!result.is_object() || !result["error"].is_object()) {
    return "";
  }
  return result["error"].value("type", "");
}

// An Elixir string literal of a plain path.
std::string quoted(const std::string& text)
{
  return "\"" + text + "\"";
}

std::string first_line(const fs::path& path)
{
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Processes whose comm is `name`.
std::vector<pid_t> processes_named(const std::string& name)
{
  std::vector<pid_t> found;
  std::error_code ec;
  for (int number : sandbox::util::list_pids()) {
    std::stringstream in(sandbox::util::read_proc_file(number, "comm"));
    std::string comm;
    std::getline(in, comm);
    if (comm == name) {
      found.push_back(static_cast<pid_t>(number));
    }
  }
  return found;
}

// A host process with `marker` in its argv, in its own process group.
class Canary {
public:
  explicit Canary(const std::string& marker)
  {
    m_pid = ::fork();
    if (m_pid == 0) {
      ::setpgid(0, 0);
      ::execlp("sh", "sh", "-c", "while :; do sleep 1; done", marker.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 50 && processes_with_argument(marker).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  Canary(const Canary&) = delete;
  Canary& operator=(const Canary&) = delete;
  ~Canary()
  {
    if (m_pid > 0) {
      ::kill(-m_pid, SIGKILL);
      ::kill(m_pid, SIGKILL);
      ::waitpid(m_pid, nullptr, 0);
    }
  }
  [[nodiscard]] bool alive() const { return m_pid > 0 && ::waitpid(m_pid, nullptr, WNOHANG) == 0; }

private:
  pid_t m_pid = -1;
};

using Adversarial = AttackTest;

// --- secrets --------------------------------------------------------------

TEST_F(Adversarial, HostSecretFileAndShadowAreNotReadable)
{
  TempTree host("adv-secret-");
  auto secret = random_token("SECRETFILE");
  auto secret_path = host.write("secret.txt", secret + "\n");
  fs::permissions(secret_path, fs::perms::owner_read | fs::perms::owner_write);
  std::string shadow_line = first_line("/etc/shadow");

  auto run = attack("IO.inspect(File.read(" + quoted(secret_path.string()) +
                    "), label: \"secret\")\n"
                    "IO.inspect(File.read(\"../../../../../.." +
                    secret_path.string() +
                    "\"), label: \"dotdot\")\n"
                    "IO.inspect(File.read(\"/proc/1/root" +
                    secret_path.string() +
                    "\"), label: \"procroot\")\n"
                    "IO.inspect(File.read(\"/etc/shadow\"), label: \"shadow\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("secret: {:error,"), std::string::npos) << output;
  EXPECT_NE(output.find("shadow: {:error,"), std::string::npos) << output;
  EXPECT_NE(output.find("dotdot: {:error,"), std::string::npos) << output;
  EXPECT_NE(output.find("procroot: {:error,"), std::string::npos) << output;
  EXPECT_EQ(run.out.find(secret), std::string::npos) << "the host secret file leaked";
  EXPECT_EQ(run.err.find(secret), std::string::npos);
  if (!shadow_line.empty()) {
    EXPECT_EQ(run.out.find(shadow_line), std::string::npos) << "/etc/shadow leaked";
  }
}

TEST_F(Adversarial, HostEnvironmentSecretIsAbsent)
{
  auto secret = random_token("ENVSECRET");
  auto run = attack("IO.inspect(System.get_env(), limit: :infinity)\n"
                    "IO.inspect(File.read(\"/proc/1/environ\"), label: \"pid1\")\n"
                    "IO.inspect(File.read(\"/proc/self/environ\"), label: \"self\")\n",
                    {}, with_env({{"ADV_HOST_SECRET", secret}}));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("\"HOME\""), std::string::npos) << "the environment was never printed";
  EXPECT_NE(output.find("pid1:"), std::string::npos) << output;
  EXPECT_EQ(run.out.find(secret), std::string::npos) << "the host environment leaked";
  EXPECT_EQ(run.err.find(secret), std::string::npos);
}

TEST_F(Adversarial, OtherProcessesCommandLinesAreInvisible)
{
  auto marker = random_token("CMDLINE");
  Canary canary(marker);
  ASSERT_FALSE(processes_with_argument(marker).empty()) << "the canary did not start";
  auto run = attack("for pid <- File.ls!(\"/proc\"), pid =~ ~r/^\\d+$/,\n"
                    "    {:ok, c} <- [File.read(\"/proc/#{pid}/cmdline\")] do\n"
                    "  IO.puts(pid <> \": \" <> String.replace(c, <<0>>, \" \"))\n"
                    "end\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("beam"), std::string::npos) << "the job saw not even itself: " << output;
  EXPECT_EQ(run.out.find(marker), std::string::npos) << "a host process is visible to the job";
  EXPECT_TRUE(canary.alive());
}

// --- writes ---------------------------------------------------------------

TEST_F(Adversarial, WriteOutsideTheJobDoesNotReachTheHost)
{
  TempTree host("adv-target-");
  auto target = host.path() / "planted";
  auto tmp_target = fs::path("/tmp") / random_token("adv-planted-");
  auto run = attack("IO.inspect(File.write(" + quoted(target.string()) +
                    ", \"x\"))\n"
                    "IO.inspect(File.write(" +
                    quoted(tmp_target.string()) +
                    ", \"x\"))\n"
                    "IO.inspect(File.mkdir_p(" +
                    quoted((host.path() / "d/e").string()) +
                    "))\n"
                    "IO.inspect(File.write(" +
                    quoted((state_dir() / "planted").string()) + ", \"x\"))\n");
  EXPECT_TRUE(run.exit_code == 0 || run.json()["ok"] == false) << run.describe();
  EXPECT_FALSE(fs::exists(target)) << "the job wrote into a host directory";
  EXPECT_FALSE(fs::exists(host.path() / "d")) << "the job made a host directory";
  EXPECT_FALSE(fs::exists(state_dir() / "planted")) << "the job wrote into the engine state";
  bool planted = fs::exists(tmp_target);
  fs::remove(tmp_target);
  EXPECT_FALSE(planted) << "the job wrote into the host /tmp";
}

TEST_F(Adversarial, WritesIntoTheSourceTreeLeaveItUnchanged)
{
  auto path = make_sandbox(
      "selfwrite",
      {{"lib/attack.ex",
        module_source("IO.inspect(File.write(\"lib/evil.ex\", \"defmodule Evil, do: nil\"))\n"
                      "IO.inspect(File.write(\"/sandbox/lib/evil2.ex\", \"x\"))\n"
                      "IO.inspect(File.write(\"lib/attack.ex\", \"broken\"))\n"
                      "IO.inspect(File.rm(\"lib/attack.ex\"))\n"
                      "IO.inspect(File.write(\"mix.exs\", \"x\"))\n")}});
  auto before = snapshot_tree(path);
  auto run = compile_attack(path);
  EXPECT_TRUE(run.exit_code == 0 || run.json()["ok"] == false) << run.describe();
  EXPECT_EQ(diff_trees(before, snapshot_tree(path)), "");
}

// --- network --------------------------------------------------------------

TEST_F(Adversarial, TcpConnectToHostLoopbackFails)
{
  Listener v4(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(v4.ok());
  Listener v6(AF_INET6, SOCK_STREAM);
  std::string code = "IO.inspect(:gen_tcp.connect({127, 0, 0, 1}, " + std::to_string(v4.port()) +
                     ", [], 1000), label: \"v4\")\n";
  if (v6.ok()) {
    code += "IO.inspect(:gen_tcp.connect({0, 0, 0, 0, 0, 0, 0, 1}, " + std::to_string(v6.port()) +
            ", [:inet6], 1000), label: \"v6\")\n";
  }
  auto run = attack(code);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("v4: {:error,"), std::string::npos) << output;
  EXPECT_FALSE(v4.received()) << "the job reached a host TCP listener on 127.0.0.1";
  if (v6.ok()) {
    EXPECT_NE(output.find("v6: {:error,"), std::string::npos) << output;
    EXPECT_FALSE(v6.received()) << "the job reached a host TCP listener on ::1";
  }
}

TEST_F(Adversarial, UdpToHostSocketIsNotDelivered)
{
  Listener udp(AF_INET, SOCK_DGRAM);
  ASSERT_TRUE(udp.ok());
  auto run = attack("r = case :gen_udp.open(0) do\n"
                    "  {:ok, s} -> for _ <- 1..5, do: :gen_udp.send(s, {127, 0, 0, 1}, " +
                    std::to_string(udp.port()) +
                    ", \"ping\")\n"
                    "  e -> e\n"
                    "end\n"
                    "IO.inspect(r, label: \"udp\")\n"
                    "Process.sleep(200)\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_NE(run.json()["output"].get<std::string>().find("udp:"), std::string::npos);
  EXPECT_FALSE(udp.received()) << "a datagram from the job reached the host";
}

TEST_F(Adversarial, ErlangDistributionDoesNotStart)
{
  auto before = processes_named("epmd");
  auto run = attack("IO.inspect(Node.start(:\"adv@127.0.0.1\"), label: \"node\")\n"
                    "IO.inspect(Node.alive?(), label: \"alive\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("node: {:error,"), std::string::npos) << output;
  EXPECT_NE(output.find("alive: false"), std::string::npos) << output;
  auto after = processes_named("epmd");
  for (pid_t pid : after) {
    EXPECT_NE(std::find(before.begin(), before.end(), pid), before.end())
        << "an epmd started by the job runs on the host: " << pid;
  }
}

TEST_F(Adversarial, UnshareAndMountFail)
{
  auto mounts_before = read_text("/proc/self/mountinfo");
  auto run =
      attack("IO.inspect(System.cmd(\"sh\", [\"-c\", \"unshare -r -m true && echo UNSHARE_'OK'; "
             "mount -t tmpfs none /tmp && echo MOUNT_'OK'; echo DONE\"], stderr_to_stdout: true))\n"
             "IO.inspect(:os.cmd(String.to_charlist(\"mount -t proc proc /job && echo "
             "OSMOUNT_'OK'\")))\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("DONE"), std::string::npos) << output;
  EXPECT_EQ(output.find("UNSHARE_OK"), std::string::npos) << output;
  EXPECT_EQ(output.find("MOUNT_OK"), std::string::npos) << output;
  EXPECT_EQ(read_text("/proc/self/mountinfo"), mounts_before);
}

// --- outputs --------------------------------------------------------------

TEST_F(Adversarial, SymlinkedOutputIsSuspiciousNotABeam)
{
  auto run = attack("home = System.get_env(\"HOME\")\n"
                    "IO.inspect(File.ln_s(\"/etc/passwd\", Path.join(home, "
                    "\"../ebin/Elixir.Evil.beam\")), label: \"ln_s\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  ASSERT_NE(result["output"].get<std::string>().find("ln_s: :ok"), std::string::npos)
      << "the link was not made: the test proved nothing";
  auto names = beam_names(result);
  EXPECT_EQ(std::find(names.begin(), names.end(), "Elixir.Evil.beam"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "Elixir.Attack.beam"), names.end());
  bool reported = false;
  for (const auto& item : result["suspicious_artifacts"]) {
    if (item.value("path", "").find("Elixir.Evil.beam") != std::string::npos) {
      reported = true;
    }
  }
  EXPECT_TRUE(reported) << result["suspicious_artifacts"].dump();
}

// --- resources ------------------------------------------------------------

TEST_F(Adversarial, InfiniteLoopTimesOut)
{
  auto run = attack("f = fn f, n -> f.(f, n + 1) end\nf.(f, 0)\n", {"--timeout", "3000"});
  ASSERT_TRUE(is_error(run, "compilation_timeout", 1));
  EXPECT_LT(run.wall_ms, 8000);
}

TEST_F(Adversarial, SleepForeverTimesOut)
{
  auto run = attack("Process.sleep(:infinity)\n", {"--timeout", "2000"});
  ASSERT_TRUE(is_error(run, "compilation_timeout", 1));
  EXPECT_GE(run.wall_ms, 1900);
  EXPECT_LT(run.wall_ms, 7000);
}

TEST_F(Adversarial, BinaryMemoryHogHitsTheMemoryLimit)
{
  auto run = attack("IO.inspect(byte_size(:binary.copy(<<0>>, 1_000_000_000)))\n",
                    {"--memory-limit", "128M", "--timeout", "20000"});
  ASSERT_TRUE(is_error(run, "resource_limit_exceeded", 1));
  EXPECT_EQ(run.json()["error"]["limit_type"], "memory_limit") << run.out;
}

TEST_F(Adversarial, StdoutFloodHitsTheOutputCap)
{
  auto run = attack("line = String.duplicate(\"x\", 1000)\n"
                    "Enum.each(1..100_000_000, fn _ -> IO.puts(line) end)\n",
                    {"--timeout", "30000"});
  ASSERT_TRUE(is_error(run, "output_limit_exceeded", 1));
  EXPECT_LT(run.out.size(), 64 * 1024u) << "the flood reached the result";
}

TEST_F(Adversarial, ShellForkBombIsContained)
{
  auto marker = random_token("FORKBOMB");
  // dash refuses a function named `:`, so the classic bomb with a plain name.
  auto run = attack("IO.inspect(System.cmd(\"sh\", [\"-c\", \"b(){ b|b& };b\", \"" + marker +
                        "\"], stderr_to_stdout: true))\n",
                    {"--max-processes", "64", "--timeout", "5000"});
  auto type = error_type(run);
  EXPECT_TRUE(type == "resource_limit_exceeded" || type == "compilation_timeout") << run.describe();
  if (type == "resource_limit_exceeded") {
    EXPECT_EQ(run.json()["error"]["limit_type"], "max_processes") << run.out;
  }
  EXPECT_LT(run.wall_ms, 15000);
  EXPECT_TRUE(wait_until_gone(marker)) << "fork bomb processes outlived the compile";
}

TEST_F(Adversarial, DoubleForkedDaemonDoesNotSurvive)
{
  auto marker = random_token("DAEMON");
  std::atomic<bool> done = false;
  std::atomic<bool> seen = false;
  std::thread watcher([&] {
    while (!done) {
      if (!processes_with_argument(marker).empty()) {
        seen = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto run =
      attack("{_, 0} = System.cmd(\"sh\", [\"-c\", \"(while :; do :; done >/dev/null 2>&1 &) & "
             "exit 0\", \"" +
             marker +
             "\"], into: \"\")\n"
             "Process.sleep(1000)\n"); // the watcher sees it even on a loaded machine
  done = true;
  watcher.join();
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_TRUE(seen) << "the daemon never started: the test proved nothing";
  EXPECT_TRUE(wait_until_gone(marker)) << "the daemon outlived the compile";
}

TEST_F(Adversarial, KillAllDoesNotReachTheHost)
{
  auto marker = random_token("KILLALL");
  Canary canary(marker);
  auto run = attack("IO.inspect(System.cmd(\"sh\", [\"-c\", \"kill -9 -1\"]))\n");
  // The job kills itself (typed failure) or survives; either way the host is fine.
  EXPECT_TRUE(run.exit_code == 0 || run.json()["ok"] == false) << run.describe();
  EXPECT_TRUE(canary.alive()) << "kill -9 -1 in the job killed a host process";
  auto next = attack("IO.puts(\"next\")\n");
  ASSERT_EQ(next.exit_code, 0) << next.describe();
  EXPECT_EQ(next.json()["output"], "next\n");
}

} // namespace

} // namespace sandbox::test
