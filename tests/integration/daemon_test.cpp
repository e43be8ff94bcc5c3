// The per-user background engine behind the command line (docs/daemon.md):
// the same stdout, stderr and exit status with and without it; one engine
// however many commands start at once; an engine killed, stale, idle or of
// another version replaced by the next command, which still succeeds.

#include "daemon_support.h"

namespace sandbox::test {
namespace {

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
