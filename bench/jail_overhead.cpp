// The jail's own cost per job: the same command run by NamespaceRunner
// (namespaces, mounts, seccomp, cgroups, set-up and tear-down) and by
// GroupRunner (a plain process group), in one run. Medians of BENCH_RUNS
// (default 20). Goal: at most 15 ms added per job.

#include "bench_support.h"
#include "jail/namespace_runner.h"
#include "jail/process.h"

#include <cstdio>
#include <fstream>

namespace {

double median_run_ms(sandbox::jail::ProcessRunner& runner, const sandbox::jail::ProcessSpec& spec,
                     int runs)
{
  std::vector<double> samples;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto result = runner.run(spec);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
    if (!result.succeeded()) {
      std::fprintf(stderr, "job failed: verdict %s, exit %d, %s %s\n%s\n",
                   std::string(sandbox::jail::to_string(result.verdict)).c_str(), result.exit_code,
                   result.setup_stage.c_str(), result.setup_error.c_str(), result.output.c_str());
      std::exit(1);
    }
    samples.push_back(ms.count());
  }
  return bench::median(samples);
}

} // namespace

int main()
{
  int runs = std::getenv("BENCH_RUNS") ? std::atoi(std::getenv("BENCH_RUNS")) : 20;
  auto work = bench::make_temp("sandbox-bench-jail-");
  bench::fs::create_directories(work / "src");
  std::ofstream(work / "src" / "m.erl") << "-module(m).\n-export([f/0]).\nf() -> ok.\n";

  sandbox::jail::NamespaceRunnerOptions options;
  options.mounts.toolchain.push_back("/usr/bin/true");
  sandbox::jail::NamespaceRunner jail(options);
  sandbox::jail::GroupRunner group;

  struct Case {
    const char* name;
    std::vector<std::string> argv;
  };
  std::vector<Case> cases = {
    {"true", {"/usr/bin/true"}},
    {"erlc", {"/usr/bin/erlc", "-o", "OUT", "src/m.erl"}},
  };
  std::printf("%-6s %12s %12s %10s %s\n", "job", "group ms", "jail ms", "added ms", "goal (<= 15 ms)");
  for (const auto& c : cases) {
    double medians[2] = {0, 0};
    for (int mode = 0; mode < 2; ++mode) {
      bool jailed = mode == 1;
      sandbox::jail::ProcessSpec spec;
      auto root = jailed ? bench::fs::path("/job") : work;
      for (auto arg : c.argv) {
        spec.argv.push_back(arg == "OUT" ? root.string() : arg);
      }
      spec.env = {"PATH=/usr/bin:/bin", "HOME=" + root.string(), "LANG=C.UTF-8"};
      spec.cwd = root;
      spec.binds.push_back({work, "/job", true});
      spec.limits.wall_timeout_ms = 60'000;
      medians[mode] = jailed ? median_run_ms(jail, spec, runs) : median_run_ms(group, spec, runs);
    }
    double added = medians[1] - medians[0];
    std::printf("%-6s %12.1f %12.1f %10.1f %s\n", c.name, medians[0], medians[1], added,
                added <= 15.0 ? "met" : "MISSED");
    std::printf("BENCH jail_added_ms_%s %.1f ms\n", c.name, added);
  }
  bench::fs::remove_all(work);
  return 0;
}
