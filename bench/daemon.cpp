// One-shot commands with and without the background engine (docs/daemon.md):
// `sandbox --version` (the process start-up floor), `scan` of a small project,
// `incremental` with nothing changed and `compile-string` of a small module,
// each the median of a few runs. The engine's runs pause between
// compile-string commands so that each finds a warm worker, as commands typed
// at a terminal do; back-to-back ones wait for a worker to boot.

#include "bench_support.h"

#include <fcntl.h>

#include <functional>
#include <thread>

namespace {

using Env = bench::EngineEnv;

// argv with stdin from `input` (or /dev/null), with the engine or in the
// process (SANDBOX_NO_DAEMON=1); seconds.
double timed(const std::vector<std::string>& argv, const Env& env, bool engine,
             const std::string& input = "")
{
  static const std::vector<std::string> in_process = {"SANDBOX_NO_DAEMON=1"};
  return bench::timed_command(argv, env, std::filesystem::current_path(), engine ? std::vector<std::string>{} : in_process,
                              input);
}

double median_ms(int runs, const std::function<double()>& once, int pause_ms = 0)
{
  std::vector<double> values;
  for (int i = 0; i < runs; ++i) {
    if (pause_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    values.push_back(once() * 1000);
  }
  return bench::median(values);
}

} // namespace

int main()
{
  namespace fs = std::filesystem;
  char pattern[] = "/tmp/sandbox-bench-daemon-XXXXXX";
  fs::path root = ::mkdtemp(pattern);
  Env env{(root / "run").string(), (root / "state").string(), (root / "tmp").string()};
  for (const auto& dir : {env.runtime, env.state, env.tmp}) {
    fs::create_directories(dir);
  }
  fs::permissions(env.runtime, fs::perms::owner_all);
  auto project = root / "plain_lib";
  fs::copy(fs::path(SANDBOX_SOURCE_DIR) / "examples/plain_lib", project,
           fs::copy_options::recursive);
  auto module = (root / "greeter.ex").string();
  {
    std::FILE* file = std::fopen(module.c_str(), "w");
    std::fputs("defmodule Greeter do\n  def hi(name), do: \"hi \" <> name\nend\n", file);
    std::fclose(file);
  }
  auto out = (root / "out").string();
  fs::create_directories(out);
  const std::string bin = SANDBOX_BINARY;
  const std::vector<std::string> scan = {bin, "scan", project.string()};
  const std::vector<std::string> incremental = {bin, "incremental", project.string(), "--compiler",
                                                "elixirc"};
  const std::vector<std::string> compile_string = {bin,          "compile-string", "--filename",
                                                   "greeter.ex", "--out",          out};

  timed({bin, "daemon", "start"}, env, true);
  timed(incremental, env, false);                       // the first, full compile
  std::this_thread::sleep_for(std::chrono::seconds(2)); // the engine's warm worker boots

  constexpr int kRuns = 5;
  double version = median_ms(kRuns, [&] { return timed({bin, "--version"}, env, false); });
  double scan_local = median_ms(kRuns, [&] { return timed(scan, env, false); });
  double scan_engine = median_ms(kRuns, [&] { return timed(scan, env, true); });
  double inc_local = median_ms(kRuns, [&] { return timed(incremental, env, false); });
  double inc_engine = median_ms(kRuns, [&] { return timed(incremental, env, true); });
  double cs_local = median_ms(kRuns, [&] { return timed(compile_string, env, false, module); });
  double cs_engine = median_ms(
      kRuns, [&] { return timed(compile_string, env, true, module); }, 2500);
  timed({bin, "daemon", "stop"}, env, true);
  fs::remove_all(root);

  std::printf("BENCH process_start_version_ms %.1f ms\n", version);
  std::printf("BENCH scan_in_process_ms %.1f ms\n", scan_local);
  std::printf("BENCH scan_engine_ms %.1f ms\n", scan_engine);
  std::printf("BENCH incremental_no_change_in_process_ms %.1f ms\n", inc_local);
  std::printf("BENCH incremental_no_change_engine_ms %.1f ms\n", inc_engine);
  std::printf("BENCH compile_string_in_process_ms %.1f ms\n", cs_local);
  std::printf("BENCH compile_string_engine_ms %.1f ms\n", cs_engine);
  std::printf("BENCH compile_string_speedup %.1f x\n", cs_engine > 0 ? cs_local / cs_engine : 0.0);
  return 0;
}
