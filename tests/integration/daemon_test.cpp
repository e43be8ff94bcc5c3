// The per-user background engine behind the command line (docs/daemon.md):
// the same stdout, stderr and exit status with and without it; one engine
// however many commands start at once; an engine killed, stale, idle or of
// another version replaced by the next command, which still succeeds.
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
namespace {

using nlohmann::json;

constexpr const char* kModule = "defmodule Greeter do\n  def hi(name), do: \"hi \" <> name\nend\n";

RunOptions in_dir(const fs::path& dir, std::string input = {})
{
  RunOptions options;
  options.cwd = dir;
  options.stdin_data = std::move(input);
  return options;
}

bool alive(pid_t pid)
{
  // A zombie (an engine whose parent is this test process) is gone too.
  auto stat = read_text(fs::path("/proc") / std::to_string(pid) / "stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

bool wait_until(const std::function<bool()>& done, int timeout_ms = 10'000)
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
json comparable(json result)
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

TEST_F(Daemon, ScanIsTheSameWithAndWithoutTheEngine)
{
  auto sandbox_dir = copy_example("hello_mix");
  expect_same({"scan", sandbox_dir.string(), "--json"});
  expect_same({"scan", sandbox_dir.string()});
  // A relative path is resolved against the caller's working directory.
  expect_same({"scan", "hello_mix", "--json"}, in_dir(sandbox_dir.parent_path()));
  auto hostile = make_sandbox(
      "hostile",
      {{"lib/evil.ex",
        "defmodule Evil do\n  def run, do: System.cmd(\"rm\", [\"-rf\", \"/\"])\nend\n"}});
  expect_same({"scan", hostile.string(), "--json"});
  EXPECT_NE(engine_pid(), 0);
}

TEST_F(Daemon, CompileAndCompileFileAreTheSame)
{
  auto lib = copy_example("plain_lib");
  expect_same_json({"compile", lib.string(), "--compiler", "elixirc", "--json"});
  expect_same_json({"compile", "plain_lib", "--compiler", "elixirc", "--json"},
                   in_dir(lib.parent_path()));
  expect_same_json({"compile-file", "lib/shapes_format.ex", "--json"}, in_dir(lib));
}

TEST_F(Daemon, ErrorsAndUsageAreTheSame)
{
  auto broken = copy_example("compile_error");
  expect_same({"compile", broken.string(), "--compiler", "elixirc"});
  expect_same_json({"compile", broken.string(), "--compiler", "elixirc", "--json"});
  expect_same({"compile", (scratch() / "missing").string(), "--json"});
  expect_same({"compile", broken.string(), "--timeout", "soon", "--json"});
  expect_same({"compile", broken.string(), "--no-such-flag"});
  expect_same({"scan"});
  expect_same({"cache", "stats", "relative/missing", "--json"});
}

TEST_F(Daemon, CompileStringIsTheSame)
{
  auto out_here = scratch() / "out-here";
  auto out_there = scratch() / "out-there";
  fs::create_directories(out_here);
  fs::create_directories(out_there);
  auto here =
      local({"compile-string", "--filename", "greeter.ex", "--out", out_here.string(), "--json"},
            with_stdin(kModule));
  auto there =
      engine({"compile-string", "--filename", "greeter.ex", "--out", "out-there", "--json"},
             in_dir(scratch(), kModule));
  ASSERT_EQ(here.exit_code, 0) << here.describe();
  ASSERT_EQ(there.exit_code, 0) << there.describe();
  EXPECT_EQ(there.err, here.err);
  EXPECT_EQ(there.json()["modules"], here.json()["modules"]);
  EXPECT_EQ(there.json()["warnings"], here.json()["warnings"]);
  EXPECT_EQ(beam_names(there.json()), beam_names(here.json()));
  EXPECT_TRUE(fs::exists(out_there / "Elixir.Greeter.beam"));
  // A compile error: the same report, the same status.
  expect_same({"compile-string", "--filename", "bad.ex", "--out", out_here.string()},
              with_stdin("defmodule Bad do\n  def f, do: nope()\nend\n"));
}

TEST_F(Daemon, IncrementalAndCacheAreTheSame)
{
  auto [there, here] = two_copies("plain_lib");
  expect_same_on({"incremental", "", "--compiler", "elixirc", "--json"}, there, here);
  expect_same_on({"incremental", "", "--compiler", "elixirc", "--json"}, there, here);
  for (const auto& dir : {there, here}) {
    std::ofstream(dir / "lib" / "shapes_format.ex", std::ios::app)
        << "\ndefmodule Shapes.Extra do\n  def x, do: 1\nend\n";
  }
  expect_same_on({"incremental", "", "--compiler", "elixirc", "--json"}, there, here);
  expect_same_on({"cache", "stats", "", "--json"}, there, here);
  expect_same_on({"cache", "clear", "", "--json"}, there, here);
}

TEST_F(Daemon, EditsRenamesAndDeletesWhileTheEngineIsIdleAreSeen)
{
  auto [there, here] = two_copies("plain_lib");
  const std::vector<std::string> incremental = {"incremental", "", "--compiler", "elixirc",
                                                "--json"};
  expect_same_on(incremental, there, here);
  for (const auto& dir : {there, here}) {
    std::ofstream(dir / "lib" / "extra.ex") << "defmodule Shapes.Extra do\n  def x, do: 1\nend\n";
  }
  expect_same_on(incremental, there, here);
  for (const auto& dir : {there, here}) {
    fs::rename(dir / "lib" / "extra.ex", dir / "lib" / "renamed.ex");
  }
  expect_same_on(incremental, there, here);
  for (const auto& dir : {there, here}) {
    fs::remove(dir / "lib" / "renamed.ex");
  }
  auto last = engine({"incremental", there.string(), "--compiler", "elixirc", "--json"});
  EXPECT_EQ(beam_names(last.json()),
            (std::vector<std::string>{"Elixir.Shapes.Format.beam", "Elixir.Shapes.beam"}))
      << last.describe();
}

// The engine watches the trees it compiled (inotify) and looks again only at
// what changed: an edit of the same size within the same second, a new
// directory, a directory renamed or removed, a threat written while it idles.
TEST_F(Daemon, TheWatchedTreeSeesEveryKindOfChange)
{
  auto doctor = local({"doctor", "--json"});
  auto support = doctor.json().value("watch", json::object());
  ASSERT_TRUE(support.contains("works")) << doctor.describe();
  auto human = local({"doctor"});
  EXPECT_NE(human.out.find("watch: " + support.value("detail", std::string("?"))), std::string::npos) << human.out;
  if (!support.value("works", false)) {
    GTEST_SKIP() << "this kernel cannot watch trees: " << support.value("detail", "");
  }
  auto [there, here] = two_copies("plain_lib");
  const std::vector<std::string> incremental = {"incremental", "", "--compiler", "elixirc", "--json"};
  expect_same_on(incremental, there, here);
  auto watch = status()["watch"];
  EXPECT_TRUE(watch.value("enabled", false)) << watch.dump();
  EXPECT_GE(watch.value("trees", 0), 1) << watch.dump();
  expect_same_on(incremental, there, here);
  auto edit = [&](const std::function<void(const fs::path&)>& change) {
    for (const auto& dir : {there, here}) change(dir);
    expect_same_on(incremental, there, here);
  };
  edit([](const fs::path& dir) { // same size, same second: only the content differs
    auto file = dir / "lib" / "shapes.ex";
    auto text = read_text(file);
    text.replace(text.find("w * h"), 5, "h * w");
    std::ofstream(file, std::ios::trunc) << text;
  });
  edit([](const fs::path& dir) {
    fs::create_directories(dir / "lib" / "more" / "deeper");
    std::ofstream(dir / "lib" / "more" / "deeper" / "extra.ex") << "defmodule Shapes.Extra do\n  def x, do: 1\nend\n";
  });
  edit([](const fs::path& dir) {
    std::ofstream(dir / "lib" / "more" / "deeper" / "extra.ex", std::ios::trunc)
        << "defmodule Shapes.Extra do\n  def x, do: 2\nend\n";
  });
  edit([](const fs::path& dir) { fs::rename(dir / "lib" / "more", dir / "lib" / "moved"); });
  edit([](const fs::path& dir) {
    std::ofstream(dir / "lib" / "moved" / "deeper" / "extra.ex", std::ios::trunc)
        << "defmodule Shapes.Extra do\n  def x, do: 3\nend\n";
  });
  edit([](const fs::path& dir) { fs::remove_all(dir / "lib" / "moved"); });
  edit([](const fs::path& dir) {
    std::ofstream(dir / "lib" / "evil.ex") << "defmodule Evil do\n  System.cmd(\"id\", [])\nend\n";
  });
  auto caught = engine({"incremental", there.string(), "--compiler", "elixirc", "--json"});
  EXPECT_TRUE(is_error(caught, "security_threats_detected", 1)) << caught.describe();
  edit([](const fs::path& dir) { fs::remove(dir / "lib" / "evil.ex"); });
  auto last = engine({"incremental", there.string(), "--compiler", "elixirc", "--json"});
  EXPECT_EQ(beam_names(last.json()),
            (std::vector<std::string>{"Elixir.Shapes.Format.beam", "Elixir.Shapes.beam"}))
      << last.describe();
}

// A tree with more directories than the engine may watch is stamped in full
// every time, with the same results.
TEST_F(Daemon, ATreePastTheWatchLimitIsStampedInFull)
{
  auto [there, here] = two_copies("plain_lib");
  RunOptions limited;
  limited.env["SANDBOX_WATCH_MAX_DIRS"] = "1";
  const std::vector<std::string> incremental = {"incremental", "", "--compiler", "elixirc", "--json"};
  expect_same_on(incremental, there, here, limited);
  for (const auto& dir : {there, here}) {
    std::ofstream(dir / "lib" / "extra.ex") << "defmodule Shapes.Extra do\n  def x, do: 1\nend\n";
  }
  expect_same_on(incremental, there, here, limited);
  auto watched = engine({"daemon", "status", "--json"}, limited);
  auto watch = watched.json()["watch"];
  EXPECT_EQ(watch.value("trees", -1), 0) << watched.describe();
  EXPECT_GE(watch.value("unwatched_trees", 0), 1) << watched.describe();
  auto stopped = engine({"daemon", "stop"}, limited);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.describe();
}

// After a compile the engine prepares the temp dir of the next cache hit (a
// spare, listed in <state>/spares/<pid>.list). It is handed out only when no
// one touched it, and removed when the engine stops or by the engine that
// replaces a killed one.
TEST_F(Daemon, APreparedResultIsHandedOutOnlyUntouchedAndNeverLeftBehind)
{
  auto lib = copy_example("plain_lib");
  const std::vector<std::string> incremental = {"incremental", lib.string(), "--compiler", "elixirc", "--json"};
  auto first = engine(incremental);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  auto spare = [&] {
    std::string listed;
    wait_until([&] {
      for (const auto& entry : fs::directory_iterator(state_dir() / "spares")) {
        auto text = read_text(entry.path());
        if (text.find('\n') != std::string::npos) listed = text.substr(0, text.find('\n'));
      }
      return !listed.empty();
    });
    return listed;
  };
  auto md5s = [](const json& result) {
    std::map<std::string, std::string> out;
    for (const auto& file : result["beam_files"]) {
      out[fs::path(file.get<std::string>()).filename()] = read_text(file.get<std::string>());
    }
    return out;
  };
  auto ready = spare();
  ASSERT_FALSE(ready.empty());
  auto hit = engine(incremental);
  ASSERT_EQ(hit.exit_code, 0) << hit.describe();
  EXPECT_EQ(hit.json().value("compilation_strategy", ""), "cache_hit");
  EXPECT_EQ(hit.json().value("temp_dir", ""), ready) << "the prepared dir is handed out";
  EXPECT_EQ(md5s(hit.json()), md5s(first.json()));

  // A spare someone wrote into is not handed out.
  auto touched = spare();
  ASSERT_FALSE(touched.empty());
  ASSERT_NE(touched, ready);
  std::ofstream(fs::path(touched) / "ebin" / "Elixir.Shapes.beam", std::ios::trunc) << "not a beam";
  auto after = engine(incremental);
  ASSERT_EQ(after.exit_code, 0) << after.describe();
  EXPECT_NE(after.json().value("temp_dir", ""), touched);
  EXPECT_EQ(md5s(after.json()), md5s(first.json()));
  EXPECT_FALSE(fs::exists(touched));

  // Killed: the next engine removes what the dead one prepared.
  auto orphan = spare();
  ASSERT_FALSE(orphan.empty());
  pid_t pid = engine_pid();
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  wait_until([&] { return !alive(pid); });
  ASSERT_EQ(engine(incremental).exit_code, 0);
  EXPECT_FALSE(fs::exists(orphan));

  // Stopped: nothing prepared stays.
  auto last = spare();
  ASSERT_FALSE(last.empty());
  ASSERT_EQ(engine({"daemon", "stop"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(last));
}

// A partial compile on the engine's warm worker gets the sandbox from the
// copy the previous one used, brought in step (source_mirrors.h): each edit
// is seen, results equal the in-process command's, and once the files are
// older than the 2 s window only what changed is copied.
TEST_F(Daemon, APartialCompileOnTheWarmWorkerCopiesOnlyWhatChangedAndSeesEveryEdit)
{
  auto [there, here] = two_copies("plain_lib");
  for (const auto& dir : {there, here}) {
    for (int i = 0; i < 40; ++i) {
      fs::create_directories(dir / "lib" / "gen");
      std::ofstream(dir / "lib" / "gen" / ("m" + std::to_string(i) + ".ex"))
          << "defmodule Gen.M" << i << " do\n  def v, do: " << i << "\nend\n";
    }
  }
  const std::vector<std::string> incremental = {"incremental", "", "--compiler", "elixirc", "--json"};
  expect_same_on(incremental, there, here);
  ASSERT_TRUE(wait_until([&] { return status()["workers"].value("idle", 0) >= 1; }, 60'000))
      << status().dump();
  auto edit = [&](const std::function<void(const fs::path&)>& change) {
    for (const auto& dir : {there, here}) change(dir);
    expect_same_on(incremental, there, here);
    EXPECT_EQ(m_last["isolation"].value("mode", ""), "jail (warm worker)") << m_last.dump();
    return m_last["worker"].value("sources", json::object());
  };
  auto flip = [](const fs::path& dir) { // same size, right after the last copy
    auto file = dir / "lib" / "shapes.ex";
    auto text = read_text(file);
    auto at = text.find("w * h");
    text.replace(at == std::string::npos ? text.find("h * w") : at, 5, at == std::string::npos ? "w * h" : "h * w");
    std::ofstream(file, std::ios::trunc) << text;
  };
  auto first = edit(flip);
  EXPECT_FALSE(first.value("kept_copy", true)) << first.dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  auto second = edit([](const fs::path& dir) {
    fs::create_directories(dir / "lib" / "more");
    std::ofstream(dir / "lib" / "more" / "extra.ex") << "defmodule Shapes.Extra do\n  def x, do: 1\nend\n";
  });
  EXPECT_TRUE(second.value("kept_copy", false)) << second.dump();
  auto third = edit(flip);
  EXPECT_TRUE(third.value("kept_copy", false)) << third.dump();
  // The edited file, the one added just before, and the cache's own files.
  EXPECT_LE(third.value("copied", 1000), 10) << third.dump();
  auto fourth = edit([](const fs::path& dir) { fs::rename(dir / "lib" / "more", dir / "lib" / "moved"); });
  EXPECT_TRUE(fourth.value("kept_copy", false)) << fourth.dump();
  for (const auto& dir : {there, here}) fs::remove_all(dir / "lib" / "moved");
  expect_same_on(incremental, there, here);
  EXPECT_GE(status()["workers"].value("kept_sandbox_copies", 0), 1);
}

TEST_F(Daemon, AnEditMadeWhileTheEngineCompilesIsSeenByTheNextCommand)
{
  auto lib = copy_example("hello_mix");
  ASSERT_EQ(engine({"incremental", lib.string(), "--json"}).exit_code, 0);
  RunResult first;
  std::thread compile([&] {
    std::ofstream(lib / "lib" / "touch.ex") << "defmodule Touch do\n  def a, do: 1\nend\n";
    first = engine({"incremental", lib.string(), "--json"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::ofstream(lib / "lib" / "late.ex") << "defmodule Late do\n  def b, do: 2\nend\n";
  compile.join();
  EXPECT_EQ(first.exit_code, 0) << first.describe();
  auto next = engine({"incremental", lib.string(), "--json"});
  ASSERT_EQ(next.exit_code, 0) << next.describe();
  auto names = beam_names(next.json());
  EXPECT_NE(std::find(names.begin(), names.end(), "Elixir.Late.beam"), names.end())
      << next.describe();
  EXPECT_NE(std::find(names.begin(), names.end(), "Elixir.Touch.beam"), names.end())
      << next.describe();
}

TEST_F(Daemon, ConcurrentFirstUseStartsOneEngine)
{
  auto sandbox_dir = copy_example("hello_mix");
  constexpr int kCommands = 6;
  std::vector<RunResult> runs(kCommands);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCommands; ++i) {
    threads.emplace_back([&, i] { runs[i] = engine({"scan", sandbox_dir.string(), "--json"}); });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (const auto& run : runs) {
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    EXPECT_EQ(run.err, "") << "ran in the engine, not as a fallback";
    EXPECT_EQ(run.out, runs.front().out);
  }
  EXPECT_EQ(engines().size(), 1u);
  auto now = status();
  EXPECT_EQ(now.value("commands", 0), kCommands);
  auto log = read_text(now.value("log", ""));
  EXPECT_EQ(log.find("listening on"), log.rfind("listening on")) << log;
}

TEST_F(Daemon, KilledBetweenCommandsIsReplaced)
{
  auto sandbox_dir = copy_example("hello_mix");
  ASSERT_EQ(engine({"scan", sandbox_dir.string()}).exit_code, 0);
  pid_t first = engine_pid();
  ASSERT_NE(first, 0);
  ::kill(first, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return !alive(first); }));
  auto again = engine({"scan", sandbox_dir.string(), "--json"});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(again.err, "");
  pid_t second = engine_pid();
  EXPECT_NE(second, 0);
  EXPECT_NE(second, first);
}

TEST_F(Daemon, KilledDuringACommandTheCommandStillSucceeds)
{
  auto lib = copy_example("hello_mix");
  ASSERT_EQ(engine({"daemon", "start"}).exit_code, 0);
  pid_t first = engine_pid();
  RunResult run;
  std::thread command([&] {
    run = engine({"compile", lib.string(), "--compiler", "mix", "--json"});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ::kill(first, SIGKILL);
  command.join();
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_TRUE(run.json().value("ok", false)) << run.describe();
  EXPECT_FALSE(alive(first));
}

TEST_F(Daemon, StaleSocketIsReplaced)
{
  auto path = socket_path();
  ASSERT_FALSE(path.empty());
  fs::create_directories(fs::path(path).parent_path());
  // A socket nobody listens on any more.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
      << std::strerror(errno);
  ::close(fd);
  auto sandbox_dir = copy_example("hello_mix");
  auto run = engine({"scan", sandbox_dir.string(), "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.err, "");
  EXPECT_NE(engine_pid(), 0);
}

TEST_F(Daemon, StatusStartAndStop)
{
  auto none = status();
  EXPECT_FALSE(none.value("running", true));
  auto started = engine({"daemon", "start", "--json"});
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  pid_t pid = started.json().value("pid", 0);
  ASSERT_NE(pid, 0);
  m_seen.push_back(pid);
  EXPECT_EQ(engine_pid(), pid);
  EXPECT_EQ(fs::status(socket_path()).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(fs::path(socket_path()).parent_path()).permissions() & fs::perms::all,
            fs::perms::owner_all);
  auto human = engine({"daemon", "status"});
  EXPECT_NE(human.out.find(std::to_string(pid)), std::string::npos) << human.describe();
  auto stopped = engine({"daemon", "stop"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.describe();
  EXPECT_FALSE(alive(pid)) << "daemon stop returns once the engine has exited";
  EXPECT_FALSE(fs::exists(socket_path()));
  EXPECT_FALSE(status().value("running", true));
}

TEST_F(Daemon, ExitsWhenIdle)
{
  auto sandbox_dir = copy_example("hello_mix");
  auto run = engine({"scan", sandbox_dir.string()}, with_env({{"SANDBOX_DAEMON_IDLE_EXIT", "1"}}));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  pid_t pid = engine_pid();
  ASSERT_NE(pid, 0);
  EXPECT_TRUE(wait_until([&] { return !alive(pid); }, 15'000));
  EXPECT_FALSE(fs::exists(socket_path()));
}

TEST_F(Daemon, ARequestTheEngineCannotServeRunsInTheProcessSayingSo)
{
  // A working directory that no longer exists cannot be sent.
  auto sandbox_dir = copy_example("hello_mix");
  auto gone = scratch() / "gone";
  fs::create_directories(gone);
  std::string script = "cd '" + gone.string() + "' && rmdir '" + gone.string() + "' && exec '" +
                       sandbox_binary().string() + "' scan '" + sandbox_dir.string() + "' --json";
  RunOptions options;
  options.env = {{"XDG_RUNTIME_DIR", runtime_dir().string()},
                 {"SANDBOX_NO_DAEMON", std::nullopt},
                 {"SANDBOX_STATE_DIR", state_dir().string()},
                 {"TMPDIR", job_root().string()}};
  auto run = run_process({"/bin/sh", "-c", script}, options);
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_TRUE(run.json().value("ok", false)) << run.describe();
  EXPECT_NE(run.err.find("running in this process"), std::string::npos) << run.describe();
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.describe();
}

TEST_F(Daemon, CommandsRacingTheIdleExitSucceed)
{
  auto sandbox_dir = copy_example("hello_mix");
  for (int i = 0; i < 6; ++i) {
    auto run = engine({"scan", sandbox_dir.string(), "--json"},
                      with_env({{"SANDBOX_DAEMON_IDLE_EXIT", "1"}}));
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    EXPECT_EQ(run.err, "") << run.describe();
    std::this_thread::sleep_for(std::chrono::milliseconds(900 + 40 * i));
  }
}

TEST_F(Daemon, AnEngineOfAnotherVersionIsStoppedAndReplaced)
{
  // A copy of the binary is another build: another identity.
  auto other =
      sandbox_binary().parent_path() / ("sandbox-other-version-" + std::to_string(::getpid()));
  fs::copy_file(sandbox_binary(), other, fs::copy_options::overwrite_existing);
  auto started = run_process({other.string(), "daemon", "start", "--json"},
                             with_env({{"XDG_RUNTIME_DIR", runtime_dir().string()},
                                       {"SANDBOX_STATE_DIR", state_dir().string()},
                                       {"TMPDIR", job_root().string()},
                                       {"SANDBOX_NO_DAEMON", std::nullopt}}));
  fs::remove(other);
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  pid_t old_pid = started.json().value("pid", 0);
  ASSERT_NE(old_pid, 0);
  m_seen.push_back(old_pid);
  auto sandbox_dir = copy_example("hello_mix");
  auto run = engine({"scan", sandbox_dir.string(), "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.err, "");
  EXPECT_TRUE(wait_until([&] { return !alive(old_pid); }));
  pid_t new_pid = engine_pid();
  EXPECT_NE(new_pid, 0);
  EXPECT_NE(new_pid, old_pid);
}

TEST_F(Daemon, NoDaemonRunsInTheProcess)
{
  auto sandbox_dir = copy_example("hello_mix");
  auto flag = engine({"scan", sandbox_dir.string(), "--json", "--no-daemon"});
  EXPECT_EQ(flag.exit_code, 0) << flag.describe();
  auto variable = engine({"scan", sandbox_dir.string()}, with_env({{"SANDBOX_NO_DAEMON", "1"}}));
  EXPECT_EQ(variable.exit_code, 0) << variable.describe();
  EXPECT_FALSE(status().value("running", true));
}

TEST_F(Daemon, WithoutAUsableRuntimeDirectoryTheCommandRunsInTheProcess)
{
  std::ofstream(runtime_dir() / "sandbox") << "not a directory";
  auto sandbox_dir = copy_example("hello_mix");
  auto run = engine({"scan", sandbox_dir.string(), "--json"});
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_TRUE(run.json().value("ok", false));
  EXPECT_NE(run.err.find("running in this process"), std::string::npos) << run.describe();
  fs::remove(runtime_dir() / "sandbox");
}

} // namespace
} // namespace sandbox::test

namespace sandbox::test {
namespace {

// A registered toolchain through the engine: the same result as in the
// process, with the command's own toolchains.conf (its SANDBOX_CONFIG_DIR is
// part of what it sends).
TEST_F(Daemon, AChosenToolchainIsTheSameThroughTheEngine)
{
  SKIP_WITHOUT_ELIXIR_1_18();
  auto config = scratch() / "config";
  fs::create_directories(config);
  std::ofstream(config / "toolchains.conf") << "modern = " << elixir_1_18()->string() << "\n";
  ::setenv("SANDBOX_CONFIG_DIR", config.c_str(), 1);
  const std::string code = "defmodule UsesJson do\n  @j JSON.encode!([1])\n  def j, do: @j\nend\n";
  for (const char* toolchain : {"modern", "no-such-name"}) {
    SCOPED_TRACE(toolchain);
    expect_same({"compile-string", "--filename", "uses_json.ex", "--out", (scratch() / "o").string(),
                 "--toolchain", toolchain},
                with_stdin(code));
  }
  // This environment has an engine of its own: stopped while it is named.
  auto stopped = engine({"daemon", "stop"});
  ::unsetenv("SANDBOX_CONFIG_DIR");
  EXPECT_EQ(stopped.exit_code, 0) << stopped.describe();
}

} // namespace
} // namespace sandbox::test
