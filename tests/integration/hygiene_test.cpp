// Process and environment hygiene: deadlines that end the whole job, no
// orphans, no host environment in the compile, HOME and TMPDIR inside the
// job's temp dir, an untouched sandbox tree and capped output.

#include "support.h"
#include "util/fs.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

namespace sandbox::test {

namespace {

using Hygiene = SandboxTest;

// A marker argument no other process on the machine has.
std::string unique_marker()
{
  return "9" + std::to_string(::getpid()) + std::to_string(::time(nullptr) % 1000);
}

// Processes whose working directory is inside `dir`.
std::vector<pid_t> processes_in(const fs::path& dir)
{
  std::vector<pid_t> found;
  std::error_code ec;
  auto root = fs::canonical(dir, ec);
  for (int pid : sandbox::util::list_pids()) {
    auto name = std::to_string(pid);
    std::error_code link_ec;
    auto cwd = fs::read_symlink(fs::path("/proc") / name / "cwd", link_ec);
    if (!link_ec) {
      auto relative = cwd.lexically_relative(root);
      if (!relative.empty() && *relative.begin() != "..") {
        found.push_back(static_cast<pid_t>(std::stol(name)));
      }
    }
  }
  return found;
}

// Default isolation (the jail) and the opt-in process_group mode.
class Deadline : public SandboxTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(Deadline, InfiniteLoopTimesOutAndLeavesNoProcess)
{
  auto marker = unique_marker();
  // A second VM with MARKER among its arguments: a child that runs until it
  // is killed, in either mode (`sleep MARKER` would exit at once).
  const std::string source = "defmodule Loop do\n"
                             "  marker = \"" +
                             marker +
                             "\"\n"
                             "  spawn(fn ->\n"
                             "    result = System.cmd(\"erl\", [\"-noinput\", \"-eval\", "
                             "\"timer:sleep(infinity).\", \"-extra\", marker], stderr_to_stdout: true)\n"
                             "    IO.puts(:stderr, \"the child ended: \" <> inspect(result))\n"
                             "  end)\n"
                             "  Process.sleep(:infinity)\n"
                             "end\n";
  auto sandbox_path = make_sandbox("loop", {{"lib/loop.ex", source}});
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
  // Long enough that a loaded machine still boots the compiler and starts the
  // child before the deadline, or the test would prove nothing.
  // (5 s was not always enough beside a busy loop and two other suites.)
  std::vector<std::string> args = {"--timeout", "10000", "--compiler", "elixirc", "--no-security-scan"};
  if (!GetParam().empty()) {
    args.insert(args.end(), {"--isolation", GetParam()});
  }
  auto run = compile(sandbox_path, args);
  done = true;
  watcher.join();
  ASSERT_TRUE(is_error(run, "compilation_timeout", 1));
  EXPECT_EQ(run.json()["error"]["timeout"], 10000);
  EXPECT_GE(run.wall_ms, 9900);
  EXPECT_LT(run.wall_ms, 13000) << "the deadline was not enforced promptly";
  EXPECT_TRUE(seen) << "the module body never started its child: the test proved nothing\n" << run.describe();

  // Nothing the job started survives it.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto leftovers = processes_with_argument(marker);
  auto in_sandbox = processes_in(sandbox_path);
  for (pid_t pid : leftovers) {
    ::kill(pid, SIGKILL);
  }
  for (pid_t pid : in_sandbox) {
    ::kill(pid, SIGKILL);
  }
  if (GetParam() == "process_group" && !leftovers.empty()) {
    FAIL() << "regression: with --isolation process_group a child the job started in its own "
                    "session (BEAM ports run through erl_child_setup, which calls setsid) "
                    "outlives the timeout: GroupRunner kills only the process group";
  }
  EXPECT_TRUE(leftovers.empty()) << "the job's `sleep " << marker << "` outlived the compile";
  EXPECT_TRUE(in_sandbox.empty()) << "a process still runs in the sandbox directory";
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

TEST_P(Deadline, SuccessfulCompileLeavesNoDaemon)
{
  // A module body that starts a background process and returns: the compile
  // succeeds, and the process must still not outlive the job.
  auto marker = unique_marker();
  const std::string source = "defmodule Daemon do\n"
                             "  {_, 0} = System.cmd(\"sh\", [\"-c\", \"erl -noinput -eval "
                             "'timer:sleep(infinity).' -extra " +
                             marker +
                             " >/dev/null 2>&1 </dev/null &\"])\n"
                             "  Process.sleep(1000)\n" // the watcher sees it even on a loaded machine
                             "  def ok, do: :ok\n"
                             "end\n";
  auto sandbox_path = make_sandbox("daemon", {{"lib/daemon.ex", source}});
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
  std::vector<std::string> args = {"--compiler", "elixirc", "--no-security-scan"};
  if (!GetParam().empty()) {
    args.insert(args.end(), {"--isolation", GetParam()});
  }
  auto run = compile(sandbox_path, args);
  done = true;
  watcher.join();
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_TRUE(seen) << "the module body never started its daemon: the test proved nothing";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto leftovers = processes_with_argument(marker);
  for (pid_t pid : leftovers) {
    ::kill(pid, SIGKILL);
  }
  if (GetParam() == "process_group" && !leftovers.empty()) {
    FAIL() << "regression: with --isolation process_group a daemon the module body started "
                    "(setsid by erl_child_setup) outlives a successful compile";
  }
  EXPECT_TRUE(leftovers.empty()) << "a daemon started at compile time outlived the job";
}

INSTANTIATE_TEST_SUITE_P(Isolation, Deadline, ::testing::Values("", "process_group"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param.empty() ? std::string("default") : p.param;
                         });

const char* kEnvModule = R"(defmodule EnvCheck do
  if System.get_env("SANDBOX_TEST_SECRET"), do: raise("leak: the host environment is visible")
  unless System.get_env("FOO") == "bar", do: raise("FOO missing")
  home = System.fetch_env!("HOME")
  tmp = System.fetch_env!("TMPDIR")
  # Both must be writable.
  File.write!(Path.join(home, "probe"), "ok")
  File.write!(Path.join(tmp, "probe"), "ok")
  @home home
  @tmp tmp
  @names System.get_env() |> Map.keys() |> Enum.sort()
  def home, do: @home
  def tmp, do: @tmp
  def names, do: @names
end
)";

class Environment : public SandboxTest, public ::testing::WithParamInterface<std::string> {
protected:
  // The flags for the isolation mode under test.
  // The scanner is off: these tests are about what the jail contains.
  std::vector<std::string> flags(std::vector<std::string> args) const
  {
    args.push_back("--no-security-scan");
    if (!GetParam().empty()) {
      args.insert(args.end(), {"--isolation", GetParam()});
    }
    return args;
  }
};

TEST_P(Environment, HostEnvironmentIsNotVisibleButEnvOptionIs)
{
  auto sandbox_path = make_sandbox("env", {{"lib/env_check.ex", kEnvModule}});
  RunOptions with_secret;
  with_secret.env["SANDBOX_TEST_SECRET"] = "xyz";
  auto run =
      compile(sandbox_path, flags({"--compiler", "elixirc", "--env", "FOO=bar"}), with_secret);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);

  auto ebin = beam_paths(result).front().parent_path();
  auto vm = run_elixir(ebin, "IO.puts(EnvCheck.home()); IO.puts(EnvCheck.tmp()); "
                             "IO.puts(Enum.join(EnvCheck.names(), \",\"))");
  ASSERT_EQ(vm.exit_code, 0) << vm.describe();
  std::vector<std::string> lines;
  std::stringstream stream(vm.out);
  for (std::string line; std::getline(stream, line);) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 3U) << vm.out;
  fs::path home = lines[0];
  fs::path tmp = lines[1];
  std::string names = "," + lines[2] + ",";
  EXPECT_NE(names.find(",FOO,"), std::string::npos) << names;
  for (const char* host_only : {"SANDBOX_TEST_SECRET", "SANDBOX_STATE_DIR", "GTEST_FILTER"}) {
    EXPECT_EQ(names.find(std::string(",") + host_only + ","), std::string::npos)
        << host_only << " reached the compile: " << names;
  }
  const char* host_home = std::getenv("HOME");
  EXPECT_NE(home, fs::path(host_home != nullptr ? host_home : "/root"));
  EXPECT_NE(tmp, job_root());
  EXPECT_NE(tmp, fs::path("/tmp"));
  // Both in the job's own directory.
  EXPECT_EQ(home.filename(), "home");
  EXPECT_EQ(tmp.filename(), "tmp");
  EXPECT_EQ(home.parent_path(), tmp.parent_path());
  EXPECT_EQ(result["isolation"].value("mode", ""), GetParam().empty() ? "jail" : GetParam());
  if (result["isolation"].value("mode", "") == "process_group") {
    // No path remapping: the job's HOME and TMPDIR are host paths in temp_dir.
    fs::path temp = result["temp_dir"].get<std::string>();
    for (const auto& dir : {home, tmp}) {
      auto relative = dir.lexically_relative(temp);
      EXPECT_FALSE(relative.empty() || *relative.begin() == "..")
          << dir << " is not inside " << temp;
    }
  }

  // The control: without --env FOO=bar the module body raises, and that is a
  // compilation failure carrying the message.
  auto control = compile(sandbox_path, flags({"--compiler", "elixirc"}));
  ASSERT_TRUE(is_error(control, "compilation_failed", 1));
  EXPECT_NE(control.json()["error"]["output"].get<std::string>().find("FOO missing"),
            std::string::npos)
      << control.describe();
}

INSTANTIATE_TEST_SUITE_P(Isolation, Environment, ::testing::Values("", "process_group"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param.empty() ? std::string("default") : p.param;
                         });

struct BackendCase {
  std::string example;
  std::string compiler;
};

void PrintTo(const BackendCase& c, std::ostream* out)
{
  *out << c.example << " with " << c.compiler;
}

class SandboxTreeUnchanged : public SandboxTest,
                             public ::testing::WithParamInterface<BackendCase> {};

TEST_P(SandboxTreeUnchanged, AfterCompiling)
{
  auto sandbox_path = copy_example(GetParam().example);
  auto before = snapshot_tree(sandbox_path);
  auto run = compile(sandbox_path, {"--compiler", GetParam().compiler});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_FALSE(beam_paths(run.json()).empty());
  auto after = snapshot_tree(sandbox_path);
  // The specification's cache directory is the only thing a compile may add.
  std::erase_if(after, [](const auto& item) { return item.first.starts_with(".sandbox_cache"); });
  EXPECT_EQ(diff_trees(before, after), "");
  for (const auto& [path, item] : after) {
    EXPECT_FALSE(path.starts_with("_build")) << path;
    EXPECT_FALSE(path.ends_with(".beam")) << path;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SandboxTreeUnchanged,
                         ::testing::Values(BackendCase{"hello_mix", "mix"},
                                           BackendCase{"plain_lib", "elixirc"},
                                           BackendCase{"erlang", "erlc"}),
                         [](const ::testing::TestParamInfo<BackendCase>& p) {
                           return p.param.compiler;
                         });

TEST_F(Hygiene, MixBuildStateStaysInTheJobDirectory)
{
  auto sandbox_path =
      make_sandbox("mixenv", {{"mix.exs", "defmodule MixEnv.MixProject do\n"
                                          "  use Mix.Project\n"
                                          "  def project, do: [app: :mix_env, version: \"0.1.0\"]\n"
                                          "end\n"},
                              {"lib/probe.ex", "defmodule Probe do\n"
                                               "  @vars for v <- ~w(HOME TMPDIR MIX_BUILD_PATH "
                                               "MIX_HOME MIX_DEPS_PATH), do: {v, "
                                               "System.get_env(v)}\n"
                                               "  def vars, do: @vars\n"
                                               "end\n"}});
  auto before = snapshot_tree(sandbox_path);
  auto run = compile(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  EXPECT_EQ(diff_trees(before, snapshot_tree(sandbox_path)), "");
  auto vm = run_elixir(beam_paths(result).front().parent_path(),
                       "for {k, v} <- Probe.vars(), do: IO.puts(\"#{k}=#{v}\")");
  ASSERT_EQ(vm.exit_code, 0) << vm.describe();
  std::stringstream stream(vm.out);
  int count = 0;
  for (std::string line; std::getline(stream, line); ++count) {
    auto eq = line.find('=');
    ASSERT_NE(eq, std::string::npos) << line;
    fs::path value = line.substr(eq + 1);
    EXPECT_TRUE(value.is_absolute()) << line;
    auto inside_sandbox = value.lexically_relative(sandbox_path);
    EXPECT_TRUE(inside_sandbox.empty() || *inside_sandbox.begin() == "..")
        << line << " points into the sandbox";
    if (result["isolation"].value("mode", "") == "process_group") {
      auto relative = value.lexically_relative(result["temp_dir"].get<std::string>());
      EXPECT_FALSE(relative.empty() || *relative.begin() == "..") << line;
    }
  }
  EXPECT_EQ(count, 5) << vm.out;
}

TEST_F(Hygiene, OutputFloodIsCappedWithBoundedMemory)
{
  auto sandbox_path =
      make_sandbox("flood", {{"lib/flood.ex", "defmodule Flood do\n"
                                              "  chunk = String.duplicate(\"x\", 1_000_000)\n"
                                              "  for _ <- 1..10, do: IO.write(chunk)\n"
                                              "  Process.sleep(:infinity)\n"
                                              "end\n"}});
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--timeout", "30000"});
  ASSERT_TRUE(is_error(run, "output_limit_exceeded", 1));
  EXPECT_EQ(run.json()["error"]["limit"], 1 << 20);
  EXPECT_LT(run.wall_ms, 25'000) << "the job was not ended when it passed the cap";
  EXPECT_LT(run.out.size(), 64U * 1024) << "the error object carries the flood";
  // The engine holds at most the cap, not the 10 MB.
  EXPECT_GT(run.peak_rss_kb, 0);
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's shadow memory and quarantine add a fixed cost.
  constexpr long kRssBoundKb = 160 * 1024;
#else
  constexpr long kRssBoundKb = 40 * 1024;
#endif
  EXPECT_LT(run.peak_rss_kb, kRssBoundKb) << "peak RSS of the sandbox command";
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());

  // A smaller cap is honoured too.
  auto small = compile(sandbox_path, {"--compiler", "elixirc", "--output-limit", "64K"});
  ASSERT_TRUE(is_error(small, "output_limit_exceeded", 1));
  EXPECT_EQ(small.json()["error"]["limit"], 64 * 1024);
}

TEST_F(Hygiene, JobSeesNoHostFilesCannotWriteTheSandboxNorConnect)
{
  // The default isolation: a fresh root, the sandbox read-only, no network.
  auto secret = scratch() / "host-secret.txt";
  std::ofstream(secret) << "secret";
  fs::permissions(scratch(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  auto sandbox_path = make_sandbox(
      "jailed",
      {{"lib/probe.ex",
        "defmodule Probe do\n"
        "  if File.exists?(\"" +
            secret.string() +
            "\"), do: raise(\"host file visible\")\n"
            "  if File.dir?(\"" +
            scratch().string() +
            "\"), do: raise(\"host tree visible\")\n"
            "  if File.write(\"planted.txt\", \"x\") == :ok, do: raise(\"sandbox writable\")\n"
            "  if File.write(\"/etc/planted\", \"x\") == :ok, do: raise(\"/etc writable\")\n"
            "  case :gen_tcp.connect({127, 0, 0, 1}, 22, [], 1000) do\n"
            "    {:ok, _} -> raise \"network reachable\"\n"
            "    {:error, _} -> :ok\n"
            "  end\n"
            "  def ok, do: :ok\n"
            "end\n"}});
  auto before = snapshot_tree(sandbox_path);
  // The probe tests the jail; the scanner would reject its file operations first.
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--no-security-scan"});
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(diff_trees(before, snapshot_tree(sandbox_path)), "");
  EXPECT_FALSE(fs::exists("/etc/planted"));
}

TEST_F(Hygiene, MemoryLimitIsATypedError)
{
  auto sandbox_path = make_sandbox(
      "memory", {{"lib/hog.ex", "defmodule Hog do\n"
                                "  big = for i <- 1..40, do: :binary.copy(<<i>>, 20_000_000)\n"
                                "  IO.puts(length(big))\n"
                                "end\n"}});
  auto run = compile(sandbox_path, {"--compiler", "elixirc", "--memory-limit", "200M"});
  ASSERT_TRUE(is_error(run, "resource_limit_exceeded", 1));
  auto error = run.json()["error"];
  EXPECT_EQ(error["limit_type"], "memory_limit");
  EXPECT_EQ(error["details"]["limit"], 200.0 * 1024 * 1024);
  EXPECT_GT(error["details"]["current"].get<double>(), 0);
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

} // namespace

} // namespace sandbox::test
