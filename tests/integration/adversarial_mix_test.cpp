// Adversarial code in mix.exs and config/config.exs (mix backend), and
// resource exhaustion from module bodies: each case checks the typed result
// and that the host is unaffected.

#include "adversarial.h"
#include "support.h"

#include <poll.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <chrono>
#include <iostream>
#include <netinet/in.h>
#include <set>
#include <thread>

namespace sandbox::test::adversarial {

// Defined in adversarial_test.cpp.
std::string random_token(const std::string& prefix);
std::set<std::string> job_cgroups();
std::vector<std::string> leaked_cgroups(const std::set<std::string>& before);
bool wait_until_gone(const std::string& marker);

} // namespace sandbox::test::adversarial

namespace sandbox::test {

namespace {

using namespace adversarial;

std::string error_type(const RunResult& run)
{
  auto result = run.json();
  if (!result.is_object() || !result["error"].is_object()) {
    return "";
  }
  return result["error"].value("type", "");
}

// A non-blocking TCP listener on 127.0.0.1.
class TcpListener {
public:
  TcpListener()
  {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::listen(m_fd, 16) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      m_port = 0;
      return;
    }
    m_port = ntohs(address.sin_port);
  }
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
  ~TcpListener()
  {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }
  [[nodiscard]] int port() const { return m_port; }
  [[nodiscard]] bool connected() const
  {
    pollfd item{m_fd, POLLIN, 0};
    if (::poll(&item, 1, 300) <= 0) {
      return false;
    }
    int client = ::accept(m_fd, nullptr, nullptr);
    if (client >= 0) {
      ::close(client);
    }
    return client >= 0;
  }

private:
  int m_fd = -1;
  int m_port = 0;
};

// No job cgroup is left; a failed job leaves no temp dir.
using Checked = LeakCheckedTest;

// --- mix.exs and config/config.exs ----------------------------------------

// The attack code runs at the top of mix.exs or in config/config.exs.
class MixAttack : public Checked, public ::testing::WithParamInterface<std::string> {
protected:
  RunResult mix_attack(const std::string& code, const std::vector<std::string>& args = {},
                       RunOptions options = {})
  {
    bool in_mix = GetParam() == "mix.exs";
    std::map<std::string, std::string> files = {
        {"mix.exs", (in_mix ? code : std::string()) +
                        "defmodule Adv.MixProject do\n"
                        "  use Mix.Project\n"
                        "  def project, do: [app: :adv, version: \"0.1.0\"]\n"
                        "end\n"},
        {"config/config.exs", "import Config\n" + (in_mix ? std::string() : code)},
        {"lib/adv.ex", "defmodule Adv do\n  def ok, do: :ok\nend\n"}};
    auto path = make_sandbox("mixattack", files);
    std::vector<std::string> all = {"--compiler", "mix"};
    all.insert(all.end(), args.begin(), args.end());
    return run_compile(path, all, std::move(options));
  }
};

TEST_P(MixAttack, HostEnvironmentSecretIsAbsent)
{
  auto secret = random_token("MIXENVSECRET");
  auto run = mix_attack("IO.inspect(System.get_env(), limit: :infinity, label: \"env\")\n", {},
                        with_env({{"ADV_HOST_SECRET", secret}}));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("env: %{"), std::string::npos) << "the environment was never printed";
  EXPECT_EQ(run.out.find(secret), std::string::npos) << "the host environment leaked";
  EXPECT_EQ(run.err.find(secret), std::string::npos);
}

TEST_P(MixAttack, HostSecretFileIsNotReadable)
{
  TempTree host("adv-mix-secret-");
  auto secret = random_token("MIXSECRETFILE");
  auto secret_path = host.write("secret.txt", secret + "\n");
  fs::permissions(secret_path, fs::perms::owner_read | fs::perms::owner_write);
  auto run =
      mix_attack("IO.inspect(File.read(\"" + secret_path.string() + "\"), label: \"secret\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_NE(run.json()["output"].get<std::string>().find("secret: {:error,"), std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find(secret), std::string::npos) << "the host secret file leaked";
}

TEST_P(MixAttack, WriteOutsideDoesNotReachTheHost)
{
  TempTree host("adv-mix-target-");
  auto target = host.path() / "planted";
  auto run =
      mix_attack("IO.inspect(File.write(\"" + target.string() + "\", \"x\"), label: \"write\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_NE(run.json()["output"].get<std::string>().find("write: {:error,"), std::string::npos)
      << run.out;
  EXPECT_FALSE(fs::exists(target)) << "the job wrote into a host directory";
}

TEST_P(MixAttack, TcpConnectToHostFails)
{
  TcpListener listener;
  ASSERT_NE(listener.port(), 0);
  auto run = mix_attack("IO.inspect(:gen_tcp.connect({127, 0, 0, 1}, " +
                        std::to_string(listener.port()) + ", [], 1000), label: \"tcp\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_NE(run.json()["output"].get<std::string>().find("tcp: {:error,"), std::string::npos)
      << run.out;
  EXPECT_FALSE(listener.connected()) << "the job reached a host TCP listener";
}

TEST_P(MixAttack, InfiniteLoopTimesOut)
{
  auto run = mix_attack("f = fn f, n -> f.(f, n + 1) end\nf.(f, 0)\n", {"--timeout", "3000"});
  ASSERT_TRUE(is_error(run, "compilation_timeout", 1));
  EXPECT_LT(run.wall_ms, 8000);
}

TEST_P(MixAttack, MemoryHogHitsTheMemoryLimit)
{
  auto run = mix_attack("IO.inspect(byte_size(:binary.copy(<<0>>, 1_000_000_000)))\n",
                        {"--memory-limit", "128M", "--timeout", "20000"});
  ASSERT_TRUE(is_error(run, "resource_limit_exceeded", 1));
  const auto result = run.json();
  const auto& error = result["error"];
  EXPECT_EQ(error["limit_type"], "memory_limit") << run.out;
  // A verdict a user can act on: what was compiling and which option raises the limit.
  EXPECT_NE(error.value("compiling", "").find("mix compile"), std::string::npos) << run.out;
  EXPECT_NE(error.value("hint", "").find("--memory-limit 256M"), std::string::npos) << run.out;
}

INSTANTIATE_TEST_SUITE_P(Adversarial, MixAttack, ::testing::Values("mix.exs", "config/config.exs"),
                         [](const auto& param_info) {
                           return param_info.param == "mix.exs" ? std::string("MixExs")
                                                                : std::string("ConfigExs");
                         });

// --- resources and outputs from a module body -------------------------------

using AdversarialResources = Checked;

TEST_F(AdversarialResources, GrowingListHitsTheMemoryLimit)
{
  auto run = attack("f = fn f, acc -> f.(f, [:crypto.strong_rand_bytes(1024) | acc]) end\n"
                    "f.(f, [])\n",
                    {"--memory-limit", "128M", "--timeout", "30000"});
  ASSERT_TRUE(is_error(run, "resource_limit_exceeded", 1));
  EXPECT_EQ(run.json()["error"]["limit_type"], "memory_limit") << run.out;
}

TEST_F(AdversarialResources, ManyOsProcessesAreCapped)
{
  auto marker = random_token("MANYPROCS");
  auto run = attack("r = for _ <- 1..200 do\n"
                    "  try do\n"
                    "    Port.open({:spawn_executable, \"/bin/sh\"}, [args: [\"-c\", "
                    "\"while :; do :; done\", \"" +
                        marker +
                        "\"]])\n"
                        "    :ok\n"
                        "  rescue\n"
                        "    e -> {:error, Exception.message(e)}\n"
                        "  end\n"
                        "end\n"
                        "IO.inspect(Enum.frequencies(r), label: \"ports\")\n"
                        "Process.sleep(:infinity)\n",
                    {"--max-processes", "32", "--timeout", "4000"});
  auto type = error_type(run);
  EXPECT_TRUE(type == "resource_limit_exceeded" || type == "compilation_timeout") << run.describe();
  if (type == "resource_limit_exceeded") {
    EXPECT_EQ(run.json()["error"]["limit_type"], "max_processes") << run.out;
  }
  EXPECT_TRUE(wait_until_gone(marker)) << "spawned processes outlived the compile";
}

TEST_F(AdversarialResources, FillingTheDiskEndsCleanly)
{
  auto run = attack("chunk = :binary.copy(<<1>>, 64_000_000)\n"
                    "r = Enum.reduce_while(1..32, 0, fn i, _ ->\n"
                    "  case File.write(\"/tmp/fill\", chunk, [:append]) do\n"
                    "    :ok -> {:cont, i}\n"
                    "    e -> {:halt, {i, e}}\n"
                    "  end\n"
                    "end)\n"
                    "IO.inspect(r, label: \"fill\")\n",
                    {"--timeout", "30000"});
  auto type = error_type(run);
  EXPECT_TRUE(run.exit_code == 0 || type == "resource_limit_exceeded" ||
              type == "compilation_timeout" || type == "compilation_failed")
      << run.describe();
  // Whatever the job wrote stays small on the host (its /tmp is capped).
  std::uintmax_t kept = 0;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(job_root(), ec)) {
    if (entry.is_regular_file(ec)) {
      kept += entry.file_size(ec);
    }
  }
  EXPECT_LT(kept, 512u * 1024 * 1024) << "the job's fill reached the host disk";
}

TEST_F(AdversarialResources, FillingTheInodeTableEndsCleanly)
{
  auto run = attack("r = Enum.reduce_while(1..100_000, 0, fn i, _ ->\n"
                    "  case File.write(\"/tmp/f#{i}\", \"\") do\n"
                    "    :ok -> {:cont, i}\n"
                    "    e -> {:halt, {i, e}}\n"
                    "  end\n"
                    "end)\n"
                    "IO.inspect(r, label: \"inodes\")\n",
                    {"--timeout", "30000"});
  auto type = error_type(run);
  EXPECT_TRUE(run.exit_code == 0 || type == "resource_limit_exceeded" ||
              type == "compilation_timeout" || type == "compilation_failed")
      << run.describe();
}

TEST_F(AdversarialResources, KernelSettingsAreReadOnly)
{
  char host_name[256] = {};
  ::gethostname(host_name, sizeof host_name - 1);
  auto run = attack(
      "IO.inspect(File.write(\"/proc/sys/kernel/hostname\", \"pwned\"), label: \"hostname\")\n"
      "IO.inspect(File.write(\"/proc/sysrq-trigger\", \"h\"), label: \"sysrq\")\n"
      "IO.inspect(File.write(\"/sys/fs/cgroup/pids/pids.max\", \"max\"), label: \"cgroup\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  EXPECT_NE(output.find("hostname: {:error,"), std::string::npos) << output;
  EXPECT_NE(output.find("sysrq: {:error,"), std::string::npos) << output;
  EXPECT_NE(output.find("cgroup: {:error,"), std::string::npos) << output;
  char after[256] = {};
  ::gethostname(after, sizeof after - 1);
  EXPECT_STREQ(after, host_name);
}

TEST_F(AdversarialResources, JobRunsWithoutPrivileges)
{
  auto run = attack("IO.puts(File.read!(\"/proc/self/status\"))\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto output = run.json()["output"].get<std::string>();
  for (const char* line : {"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000",
                           "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"}) {
    EXPECT_NE(output.find(line), std::string::npos) << line << " missing in\n" << output;
  }
  EXPECT_EQ(output.find("Uid:\t0\t"), std::string::npos) << "the job runs as root";
}

TEST_F(AdversarialResources, HardLinkToHostFileIsNotCollected)
{
  auto run = attack("home = System.get_env(\"HOME\")\n"
                    "IO.inspect(File.ln(\"/etc/passwd\", Path.join(home, "
                    "\"../ebin/Elixir.Hard.beam\")), label: \"ln\")\n");
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  auto output = result["output"].get<std::string>();
  auto names = beam_names(result);
  bool collected = std::find(names.begin(), names.end(), "Elixir.Hard.beam") != names.end();
  if (output.find("ln: :ok") != std::string::npos) {
    EXPECT_FALSE(collected) << "a hard link to a host file was collected as a beam";
  } else {
    EXPECT_NE(output.find("ln: {:error,"), std::string::npos) << output;
    EXPECT_FALSE(collected);
  }
}

} // namespace

} // namespace sandbox::test
