#pragma once
// The fixture of the background engine's tests (daemon_test.cpp,
// daemon_state_test.cpp): the command with and without the engine, compared.
//
// Every test has its own runtime directory (XDG_RUNTIME_DIR) and state
// directory, and stops its engine at the end: no process is left behind.

#include "support.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

namespace sandbox::test {

using nlohmann::json;

inline constexpr const char* kModule = "defmodule Greeter do\n  def hi(name), do: \"hi \" <> name\nend\n";

inline RunOptions in_dir(const fs::path& dir, std::string input = {})
{
  RunOptions options;
  options.cwd = dir;
  options.stdin_data = std::move(input);
  return options;
}

inline bool alive(pid_t pid)
{
  // A zombie (an engine whose parent is this test process) is gone too.
  auto stat = read_text(fs::path("/proc") / std::to_string(pid) / "stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

inline bool wait_until(const std::function<bool()>& done, int timeout_ms = 10'000)
{
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// A result without what differs between any two runs: times, temp dirs, resource use.
inline json comparable(json result)
{
  if (!result.is_object()) {
    return result;
  }
  for (const char* key : {"compilation_time", "temp_dir", "resource_usage",
                          "average_compilation_time", "total_compilation_time"}) {
    result.erase(key);
  }
  if (result.contains("beam_files")) {
    result["beam_files"] = beam_names(result);
  }
  return result;
}

class Daemon : public SandboxTest {
protected:
  Daemon() { fs::create_directories(runtime_dir()); }

  void TearDown() override
  {
    auto stopped = engine({"daemon", "stop"});
    EXPECT_EQ(stopped.exit_code, 0) << stopped.describe();
    // daemon stop returns once the engine it reached has exited; an engine
    // that was already leaving at its idle exit (its socket gone, its warm
    // worker being stopped) is not reached and finishes on its own.
    wait_until([&] { return engines().empty(); });
    auto left = engines();
    for (pid_t pid : left) {
      ADD_FAILURE() << "engine " << pid << " still running after daemon stop";
      ::kill(pid, SIGKILL);
    }
    for (pid_t pid : m_seen) {
      ::waitpid(pid, nullptr, WNOHANG);
    }
  }

  [[nodiscard]] fs::path runtime_dir() const { return scratch() / "run"; }

  // The command with the background engine.
  RunResult engine(const std::vector<std::string>& args, RunOptions options = {})
  {
    options.env.try_emplace("XDG_RUNTIME_DIR", runtime_dir().string());
    options.env.try_emplace("SANDBOX_NO_DAEMON", std::nullopt);
    options.timeout_ms = 120'000;
    return sandbox(args, options);
  }

  // The command in its own process, with the same environment otherwise.
  RunResult local(const std::vector<std::string>& args, RunOptions options = {})
  {
    options.env.try_emplace("XDG_RUNTIME_DIR", runtime_dir().string());
    options.env["SANDBOX_NO_DAEMON"] = "1";
    options.timeout_ms = 120'000;
    return sandbox(args, options);
  }

  json status()
  {
    auto run = engine({"daemon", "status", "--json"});
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    return run.json();
  }

  std::string socket_path()
  {
    if (m_socket.empty()) {
      m_socket = status().value("socket", "");
    }
    return m_socket;
  }

  // The engines running on this test's socket (not the children they fork,
  // which carry the same arguments until they run something else).
  std::vector<pid_t> engines()
  {
    auto found = processes_with_argument(socket_path());
    std::vector<pid_t> top;
    for (pid_t pid : found) {
      auto stat = read_text(fs::path("/proc") / std::to_string(pid) / "stat");
      auto close = stat.rfind(')');
      pid_t parent = close == std::string::npos ? 0 : std::atoi(stat.c_str() + close + 4);
      if (std::find(found.begin(), found.end(), parent) == found.end()) {
        top.push_back(pid);
      }
    }
    return top;
  }

  // The running engine's pid; 0 when none runs.
  pid_t engine_pid()
  {
    auto now = status();
    pid_t pid = now.value("running", false) ? now.value("pid", 0) : 0;
    if (pid != 0) {
      m_seen.push_back(pid);
    }
    return pid;
  }

  // Runs `args` both ways and expects the same exit status, stderr and stdout.
  void expect_same(const std::vector<std::string>& args, RunOptions options = {})
  {
    auto here = local(args, options);
    auto there = engine(args, options);
    EXPECT_EQ(there.exit_code, here.exit_code) << there.describe() << "\n=== in process:\n"
                                               << here.describe();
    EXPECT_EQ(there.err, here.err);
    EXPECT_EQ(there.out, here.out);
  }

  // Runs `args` (ending in --json) both ways and compares the results field by field.
  void expect_same_json(const std::vector<std::string>& args, RunOptions options = {})
  {
    auto here = local(args, options);
    auto there = engine(args, options);
    EXPECT_EQ(there.exit_code, here.exit_code) << there.describe() << "\n=== in process:\n"
                                               << here.describe();
    EXPECT_EQ(there.err, here.err);
    ASSERT_FALSE(here.json().is_discarded()) << here.describe();
    auto a = comparable(here.json());
    auto b = comparable(there.json());
    for (const auto& [key, value] : a.items()) {
      EXPECT_EQ(b.value(key, json()), value) << "field " << key;
    }
    EXPECT_EQ(a.size(), b.size()) << there.describe();
  }

  // Two copies of an example: one for the engine, one for the in-process command.
  std::pair<fs::path, fs::path> two_copies(const std::string& name)
  {
    auto there = copy_example(name);
    auto here = scratch() / "local" / name;
    fs::create_directories(here);
    fs::copy(example_dir(name), here, fs::copy_options::recursive);
    return {there, here};
  }

  // `args` with "" standing for the sandbox, run by the engine on `there` and
  // in the process on `here`: the same status, stderr and result.
  void expect_same_on(const std::vector<std::string>& args, const fs::path& there,
                      const fs::path& here, const RunOptions& options = {})
  {
    auto a = args;
    *std::find(a.begin(), a.end(), "") = there.string();
    auto b = args;
    *std::find(b.begin(), b.end(), "") = here.string();
    auto by_engine = engine(a, options);
    auto in_process = local(b, options);
    EXPECT_EQ(by_engine.exit_code, in_process.exit_code)
        << by_engine.describe() << in_process.describe();
    EXPECT_EQ(by_engine.err, in_process.err);
    auto x = comparable(by_engine.json());
    auto y = comparable(in_process.json());
    ASSERT_FALSE(y.is_discarded()) << in_process.describe();
    // A partial round runs on the engine's warm worker pool, and says so; a
    // worker prints nothing, its warnings are in `warnings` only.
    if (x.contains("isolation") && x["isolation"]["mode"] == "jail (warm worker)") {
      x["isolation"]["mode"] = "jail";
      x.erase("output");
      x.erase("worker");
      y.erase("output");
    }
    EXPECT_EQ(x, y) << by_engine.out << "\n" << in_process.out;
    m_last = by_engine.json();
  }

  json m_last; // the engine's result in the last expect_same_on

  std::vector<pid_t> m_seen;
  std::string m_socket;
};

} // namespace sandbox::test
