// An installed engine (cmake --install, as `make install` does) runs on its own:
// staged with DESTDIR, moved to another directory, and run with the build tree
// hidden, it finds its worker's BEAM beside itself, every backend compiles and
// the warm pool serves.

#include "service_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace sandbox::test {

namespace {

fs::path build_dir() { return sandbox_binary().parent_path(); }

class Install : public SandboxTest {
protected:
  // Installs the build with DESTDIR=stage and --prefix /opt/sandbox, then
  // moves the staged prefix to prefix(): the binary must not rely on either
  // the build tree or the prefix it was installed for.
  void install()
  {
    auto stage = scratch() / "stage";
    auto run = run_process({"cmake", "--install", build_dir().string(), "--prefix", "/opt/sandbox"},
                           with_env({{"DESTDIR", stage.string()}}));
    ASSERT_EQ(run.exit_code, 0) << run.describe();
    std::error_code ec;
    fs::rename(stage / "opt" / "sandbox", prefix(), ec);
    ASSERT_FALSE(ec) << ec.message();
  }

  fs::path prefix() const { return scratch() / "prefix"; }
  fs::path installed_binary() const { return prefix() / "bin" / "sandbox"; }

  // argv run with the build directory hidden under an empty tmpfs in a
  // private mount namespace, when this machine allows one (else as is, and
  // the lookup order alone keeps the build tree out: doctor shows which).
  std::vector<std::string> without_build_tree(std::vector<std::string> argv) const
  {
    static const bool can_hide =
        run_process({"unshare", "--mount", "--propagation", "private", "true"}, with_timeout(10'000)).exit_code == 0;
    if (!can_hide) {
      std::cerr << "note: no private mount namespace here; the build tree stays visible\n";
      return argv;
    }
    std::vector<std::string> wrapped = {"unshare", "--mount", "--propagation", "private", "sh", "-c",
                                        "mount -t tmpfs none \"$1\" && shift && exec \"$@\"", "sh",
                                        build_dir().string()};
    wrapped.insert(wrapped.end(), argv.begin(), argv.end());
    return wrapped;
  }

  RunResult installed(const std::vector<std::string>& args, int timeout_ms = 120'000) const
  {
    std::vector<std::string> argv = {installed_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.timeout_ms = timeout_ms;
    // The override would bypass the lookup under test.
    options.env = {{"SANDBOX_WORKER_EBIN", std::nullopt},
                   {"SANDBOX_STATE_DIR", state_dir().string()},
                   {"TMPDIR", job_root().string()}};
    fs::create_directories(job_root());
    return run_process(without_build_tree(argv), options);
  }
};

TEST_F(Install, InstalledLayoutHasTheEngineItsWorkerAndTheUnits)
{
  install();
  for (const char* file : {"bin/sandbox", "lib/sandbox/ebin/sandbox_worker.beam", "lib/systemd/system/sandbox.socket",
                           "lib/systemd/system/sandbox.service", "lib/systemd/user/sandbox.socket",
                           "lib/systemd/user/sandbox.service", "share/doc/sandbox/deploy.md"}) {
    EXPECT_TRUE(fs::is_regular_file(prefix() / file)) << file;
  }
  // The units name the binary at the prefix it was installed for.
  auto unit = read_text(prefix() / "lib/systemd/system/sandbox.service");
  EXPECT_NE(unit.find("ExecStart=/opt/sandbox/bin/sandbox serve"), std::string::npos) << unit;
  EXPECT_EQ(unit.find("@SANDBOX_"), std::string::npos) << unit;
}

TEST_F(Install, DoctorReportsTheInstalledWorker)
{
  install();
  auto run = installed({"doctor", "--json"}, 60'000);
  auto report = run.json();
  ASSERT_TRUE(report.is_object()) << run.describe();
  EXPECT_EQ(report["worker"].value("found_by", ""), "install") << report.dump(2);
  EXPECT_EQ(report["worker"].value("ebin", ""), (prefix() / "lib/sandbox/ebin").string());
  EXPECT_EQ(report["worker"].value("present", false), true);
  EXPECT_EQ(run.exit_code, report.value("ok", false) ? 0 : 1);

  auto human = installed({"doctor"}, 60'000);
  EXPECT_NE(human.out.find("worker: " + (prefix() / "lib/sandbox/ebin/sandbox_worker.beam").string() + " (install)"),
            std::string::npos)
      << human.describe();
}

TEST_F(Install, OverrideIsReportedWhenItPointsNowhere)
{
  install();
  auto run = run_process({installed_binary().string(), "doctor", "--json"},
                         with_env({{"SANDBOX_WORKER_EBIN", (scratch() / "nowhere").string()},
                                   {"SANDBOX_STATE_DIR", state_dir().string()}}));
  auto report = run.json();
  ASSERT_TRUE(report.is_object()) << run.describe();
  EXPECT_EQ(report["worker"].value("found_by", ""), "environment");
  EXPECT_EQ(report["worker"].value("present", true), false);
  EXPECT_EQ(report.value("ok", true), false);
  EXPECT_EQ(run.exit_code, 1);
}

TEST_F(Install, EveryBackendCompilesWithTheInstalledEngine)
{
  install();
  struct Case {
    const char* example;
    const char* compiler;
    const char* beam;
  };
  for (const auto& c : {Case{"hello_mix", "mix", "Elixir.HelloMix.beam"},
                        Case{"plain_lib", "elixirc", nullptr},
                        Case{"erlang", "erlc", nullptr},
                        Case{"plain_lib", "in_process", nullptr}}) {
    auto path = copy_example(c.example);
    auto run = installed({"compile", path.string(), "--compiler", c.compiler, "--json"});
    ASSERT_EQ(run.exit_code, 0) << c.compiler << ": " << run.describe();
    auto result = run.json();
    expect_success_contract(result);
    EXPECT_FALSE(beam_names(result).empty()) << c.compiler;
    if (c.beam != nullptr) {
      auto names = beam_names(result);
      EXPECT_NE(std::find(names.begin(), names.end(), c.beam), names.end()) << c.compiler;
    }
    fs::remove_all(path);
  }
}

TEST_F(Install, WarmPoolServesFromTheInstalledEngine)
{
  install();
  auto socket = scratch() / "serve.sock";
  auto log = scratch() / "serve.log";
  std::vector<std::string> argv = without_build_tree(
      {installed_binary().string(), "serve", "--socket", socket.string(), "--workers", "1", "--prestart", "1"});
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string item = *e;
    if (!item.starts_with("SANDBOX_STATE_DIR=") && !item.starts_with("TMPDIR=") &&
        !item.starts_with("SANDBOX_WORKER_EBIN=")) {
      env_strings.push_back(item);
    }
  }
  fs::create_directories(job_root());
  env_strings.push_back("SANDBOX_STATE_DIR=" + state_dir().string());
  env_strings.push_back("TMPDIR=" + job_root().string());
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  struct Stop {
    pid_t pid;
    ~Stop()
    {
      ::kill(pid, SIGTERM);
      int status = 0;
      for (int i = 0; i < 600 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, WNOHANG);
    }
  } stop{pid};

  bool up = false;
  for (int i = 0; i < 800 && !up; ++i) {
    up = Client(socket).connected;
    if (!up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ASSERT_TRUE(up) << read_text(log);
  auto path = copy_example("plain_lib");
  Client client(socket);
  auto response = client.call({{"op", "compile"},
                               {"path", path.string()},
                               {"options", {{"compiler", "in_process"}, {"timeout", 60'000}}}});
  ASSERT_TRUE(response.is_object()) << read_text(log);
  ASSERT_EQ(response.value("ok", false), true) << response.dump(2) << "\n" << read_text(log);
  EXPECT_FALSE(beam_names(response).empty()) << response.dump(2);
  auto doctor = client.call({{"op", "doctor"}});
  EXPECT_EQ(doctor["worker"].value("found_by", ""), "install") << doctor.dump(2);
}

} // namespace

} // namespace sandbox::test
