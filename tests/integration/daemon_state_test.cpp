// What the background engine keeps between commands (docs/daemon.md): the
// watch of each tree it compiled, the result prepared for the next cache hit,
// the copy of each sandbox its warm worker compiles; every edit is seen
// whatever the engine keeps.

#include "daemon_support.h"

namespace sandbox::test {
namespace {

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

} // namespace
} // namespace sandbox::test
