// The engine's cost over the raw compiler: for each corpus, a cold `mix
// compile` and an `elixirc` of lib/**/*.ex, raw and through `sandbox compile`
// (default isolation), in the same run. Medians of BENCH_RUNS (default 5).

#include "bench_support.h"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv)
{
  int runs = std::getenv("BENCH_RUNS") ? std::atoi(std::getenv("BENCH_RUNS")) : 5;
  std::vector<std::string> corpora = {"mime", "nimble_options", "decimal"};
  if (argc > 1) {
    corpora.assign(argv + 1, argv + argc);
  }
  const auto corpora_root = bench::corpora_dir(); // before anything is made: absent, it exits 2
  auto scratch = bench::make_temp("sandbox-bench-");
  std::printf("%-16s %-8s %10s %10s %8s %10s %s\n", "corpus", "backend", "raw s", "engine s", "ratio",
              "added ms", "goal (<= raw * 1.05 + 20 ms)");
  for (const auto& name : corpora) {
    auto source = corpora_root / name;
    auto copy = scratch / name;
    bench::fs::copy(source, copy, bench::fs::copy_options::recursive);
    auto files = bench::sources(copy, "lib", ".ex");
    for (const std::string backend : {"mix", "elixirc"}) {
      std::vector<double> raw, engine;
      for (int i = 0; i < runs; ++i) {
        auto out = scratch / ("out-" + std::to_string(i));
        bench::fs::remove_all(out);
        bench::fs::create_directories(out);
        bench::Run r;
        if (backend == "mix") {
          r = bench::run({"mix", "compile"}, copy,
                         {"MIX_BUILD_PATH=" + out.string(), "MIX_DEPS_PATH=" + (out / "deps").string()});
        } else {
          std::vector<std::string> args = {"elixirc", "-o", out.string()};
          args.insert(args.end(), files.begin(), files.end());
          r = bench::run(args, copy);
        }
        if (r.status != 0) {
          std::fprintf(stderr, "raw %s of %s failed\n", backend.c_str(), name.c_str());
          return 1;
        }
        raw.push_back(r.seconds);
        auto e = bench::run({SANDBOX_BINARY, "compile", copy.string(), "--compiler", backend,
                             "--temp-dir", scratch.string()},
                            copy);
        if (e.status != 0) {
          std::fprintf(stderr, "sandbox compile --compiler %s of %s failed\n", backend.c_str(),
                       name.c_str());
          return 1;
        }
        engine.push_back(e.seconds);
      }
      double raw_s = bench::median(raw);
      double engine_s = bench::median(engine);
      bool within = engine_s <= raw_s * 1.05 + 0.020;
      std::printf("%-16s %-8s %10.3f %10.3f %8.3f %10.1f %s\n", name.c_str(), backend.c_str(), raw_s,
                  engine_s, engine_s / raw_s, (engine_s - raw_s) * 1000, within ? "met" : "MISSED");
      std::printf("BENCH engine_over_raw_%s_%s %.3f x\n", backend.c_str(), name.c_str(),
                  engine_s / raw_s);
    }
  }
  bench::fs::remove_all(scratch);
  return 0;
}
