// The warm worker pool: latency of compiling one small module through a warm
// pool against `elixirc` of the same file and against Code.compile_string
// inside an already running VM (the floor), then a full compile of decimal
// and nimble_options through the pool against a cold `mix compile`.
// Medians of BENCH_RUNS (default 10 for the small module, a third of that,
// at least 3, for the corpora).

#include "bench_support.h"

#include "compiler/in_process_compiler.h"
#include "worker/pool.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace {

const char* kModule =
  "defmodule BenchSmall do\n"
  "  defstruct [:name, :count]\n"
  "  def new(name), do: %__MODULE__{name: name, count: 0}\n"
  "  def bump(%__MODULE__{count: c} = s), do: %{s | count: c + 1}\n"
  "  def names(list), do: Enum.map(list, & &1.name)\n"
  "end\n";

// Waits until an idle prestarted worker is ready: a warm request pays no boot.
void wait_for_idle_worker()
{
  for (int i = 0; i < 600; ++i) {
    auto stats = sandbox::worker::Pool::global().stats();
    if (stats.idle > 0) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "no idle worker after 12 s\n");
  std::exit(1);
}

double seconds_since(std::chrono::steady_clock::time_point start)
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Median seconds of Code.compile_string of the module in a running VM
// (after a warm-up), measured by the VM itself.
double floor_seconds(const bench::fs::path& scratch, int runs)
{
  auto file = scratch / "floor.exs";
  std::ofstream(file) << "src = File.read!(\"" << (scratch / "small.ex").string() << "\")\n"
                      << "run = fn ->\n"
                      << "  {us, [{m, _}]} = :timer.tc(fn -> Code.compile_string(src, \"small.ex\") end)\n"
                      << "  :code.purge(m); :code.delete(m); us\n"
                      << "end\n"
                      << "run.(); run.()\n"
                      << "times = Enum.sort(for _ <- 1.." << runs << ", do: run.())\n"
                      << "IO.puts(Enum.at(times, div(length(times), 2)))\n";
  std::string command = bench::tool("elixir") + " " + file.string() + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[128] = {};
  double us = 0;
  if (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
    us = std::atof(buffer);
  }
  if (pipe != nullptr) {
    ::pclose(pipe);
  }
  return us / 1e6;
}

} // namespace

int main()
{
  namespace compiler = sandbox::compiler;
  int runs = std::getenv("BENCH_RUNS") ? std::atoi(std::getenv("BENCH_RUNS")) : 10;
  const auto corpora_root = bench::corpora_dir(); // before anything is made: absent, it exits 2
  auto scratch = bench::make_temp("sandbox-bench-worker-");
  std::ofstream(scratch / "small.ex") << kModule;

  compiler::configure_worker_pool({2, 1, std::chrono::milliseconds(600'000), false, bench::toolchain()});
  sandbox::core::CompileOptions limits;
  limits.toolchain = bench::toolchain();
  std::printf("toolchain: %s\n", bench::toolchain_label().c_str());

  // 1. One small module: warm pool, elixirc, the floor.
  std::vector<double> pool_times, elixirc_times;
  for (int i = 0; i < runs; ++i) {
    wait_for_idle_worker();
    auto out = scratch / ("pool-" + std::to_string(i));
    auto start = std::chrono::steady_clock::now();
    auto result = compiler::compile_string(kModule, "small.ex", out, limits);
    pool_times.push_back(seconds_since(start));
    if (!result || result->modules.size() != 1) {
      std::fprintf(stderr, "pool compile failed: %s\n",
                   result ? "no module" : sandbox::core::describe(result.error()).c_str());
      return 1;
    }
  }
  for (int i = 0; i < runs; ++i) {
    auto out = scratch / ("elixirc-" + std::to_string(i));
    bench::fs::create_directories(out);
    auto r = bench::run({bench::tool("elixirc"), "-o", out.string(), "small.ex"}, scratch, bench::tool_env());
    if (r.status != 0) {
      std::fprintf(stderr, "elixirc failed\n");
      return 1;
    }
    elixirc_times.push_back(r.seconds);
  }
  double pool = bench::median(pool_times);
  double elixirc = bench::median(elixirc_times);
  double floor = floor_seconds(scratch, runs);
  std::printf("small module: pool %.1f ms, elixirc %.1f ms, Code.compile_string in a running VM %.1f ms"
              " (goals: pool <= elixirc / 15, pool <= 2 x floor + 5 ms = %.1f ms)\n",
              pool * 1e3, elixirc * 1e3, floor * 1e3, (2 * floor + 0.005) * 1e3);
  std::printf("BENCH warm_compile_ms %.2f ms\n", pool * 1e3);
  std::printf("BENCH elixirc_compile_ms %.2f ms\n", elixirc * 1e3);
  std::printf("BENCH floor_compile_ms %.2f ms\n", floor * 1e3);
  std::printf("BENCH warm_compile_speedup_vs_elixirc %.2f x\n", elixirc / pool);
  std::printf("BENCH warm_compile_vs_floor %.2f x\n", floor > 0 ? pool / floor : 0.0);

  // 2. Whole libraries: the pool against a cold `mix compile`.
  int corpus_runs = std::max(3, runs / 3);
  for (const std::string name : {"decimal", "nimble_options"}) {
    auto copy = scratch / name;
    bench::fs::copy(corpora_root / name, copy, bench::fs::copy_options::recursive);
    std::vector<double> pooled, mix;
    for (int i = 0; i < corpus_runs; ++i) {
      wait_for_idle_worker();
      auto out = scratch / (name + "-pool-" + std::to_string(i));
      auto start = std::chrono::steady_clock::now();
      compiler::InProcessOptions options;
      options.limits = limits;
      auto result = compiler::compile_in_process(copy, out, options);
      pooled.push_back(seconds_since(start));
      if (!result) {
        std::fprintf(stderr, "%s through the pool: %s\n", name.c_str(),
                     sandbox::core::describe(result.error()).c_str());
        return 1;
      }
      auto build = scratch / (name + "-mix-" + std::to_string(i));
      auto r = bench::run({bench::tool("mix"), "compile"}, copy,
                          bench::tool_env({"MIX_BUILD_PATH=" + build.string(), "HOME=" + (scratch / "home").string()}));
      if (r.status != 0) {
        std::fprintf(stderr, "mix compile of %s failed\n", name.c_str());
        return 1;
      }
      mix.push_back(r.seconds);
    }
    double p = bench::median(pooled), m = bench::median(mix);
    std::printf("%s: pool %.0f ms, cold mix compile %.0f ms (goal: >= 1.5x)\n", name.c_str(), p * 1e3,
                m * 1e3);
    std::printf("BENCH full_compile_speedup_vs_mix_%s %.2f x\n", name.c_str(), m / p);
  }
  compiler::shutdown_worker_pool();
  bench::fs::remove_all(scratch);
  return 0;
}
