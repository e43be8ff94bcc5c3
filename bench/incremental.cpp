// Incremental compilation against Mix's own incremental compile, in one run:
// for each corpus, a compile with nothing changed against `mix compile` with
// nothing to do, and a one-leaf-file edit (a string literal in a function body
// of a module whose exports nothing else depends on changes) against `mix
// compile` of the same edit. The engine runs as a long-running host does
// (`sandbox serve`): incremental_compile through the library with the warm
// worker pool configured, each request arriving at a warm pool. The leaf edit
// and the no-change compile are also measured as a whole one-shot `sandbox
// incremental` process (no warm pool: the partial compile boots elixirc in a
// jail; the scan before the compile is kept in the engine's state directory).
// Medians of BENCH_RUNS
// (default 5).

#include "bench_support.h"

#include "compiler/in_process_compiler.h"
#include "compiler/incremental_compile.h"
#include "worker/pool.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace {

// Changes a string literal in a function body: inserts `n` after `anchor`.
void edit(const bench::fs::path& file, const std::string& anchor, int n)
{
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  auto s = text.str();
  auto at = s.find(anchor);
  if (at == std::string::npos) {
    std::fprintf(stderr, "%s: anchor not found\n", file.c_str());
    std::exit(1);
  }
  s.insert(at + anchor.size(), std::to_string(n % 10));
  std::ofstream(file, std::ios::trunc) << s;
}

struct Leaf {
  std::string file;
  std::string anchor;
};

// Waits until an idle prestarted worker is ready: the request pays no boot.
void wait_for_idle_worker()
{
  for (int i = 0; i < 1500; ++i) {
    if (sandbox::worker::Pool::global().stats().idle > 0) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "no idle worker after 30 s\n");
  std::exit(1);
}

// One incremental compile through the library; seconds, or exits on failure.
double engine_compile(const bench::fs::path& path, const char* expected_strategy)
{
  sandbox::core::CompileOptions options;
  options.compiler = sandbox::core::Backend::mix;
  options.toolchain = bench::toolchain();
  auto start = std::chrono::steady_clock::now();
  auto result = sandbox::compiler::incremental_compile(path.string(), {}, options);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!result) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), sandbox::core::describe(result.error()).c_str());
    std::exit(1);
  }
  if (expected_strategy != nullptr && result->compilation_strategy != expected_strategy) {
    std::fprintf(stderr, "%s: strategy %s, expected %s\n", path.c_str(),
                 result->compilation_strategy.c_str(), expected_strategy);
    std::exit(1);
  }
  (void)sandbox::compiler::cleanup_temp_artifacts(result->temp_dir);
  return seconds;
}

} // namespace

int main(int argc, char** argv)
{
  int runs = std::getenv("BENCH_RUNS") ? std::atoi(std::getenv("BENCH_RUNS")) : 5;
  std::map<std::string, Leaf> leaves = {
    {"nimble_options", {"lib/nimble_options/validation_error.ex", "\" (in options"}},
    {"decimal", {"lib/decimal/error.ex", "\"#{signal}"}},
  };
  if (argc > 1) {
    std::map<std::string, Leaf> chosen;
    for (int i = 1; i < argc; ++i) chosen[argv[i]] = leaves.at(argv[i]);
    leaves = chosen;
  }
  const auto corpora_root = bench::corpora_dir(); // before anything is made: absent, it exits 2
  auto scratch = bench::make_temp("sandbox-bench-inc-");
  auto state = scratch / "state";
  std::vector<std::string> engine_env = {"SANDBOX_STATE_DIR=" + state.string()};
  ::setenv("SANDBOX_STATE_DIR", state.c_str(), 1);
  sandbox::compiler::configure_worker_pool({2, 1, std::chrono::milliseconds(600'000), false, bench::toolchain()});
  std::printf("toolchain: %s\n", bench::toolchain_label().c_str());
  std::vector<double> nochange_ratios, leaf_ratios, oneshot_ratios, oneshot_nochange_ratios;
  std::printf("%-16s %-22s %10s %10s %8s\n", "corpus", "case", "mix s", "engine s", "speedup");
  for (const auto& [name, leaf] : leaves) {
    auto engine_copy = scratch / ("engine-" + name);
    auto mix_copy = scratch / ("mix-" + name);
    bench::fs::copy(corpora_root / name, engine_copy, bench::fs::copy_options::recursive);
    bench::fs::copy(corpora_root / name, mix_copy, bench::fs::copy_options::recursive);
    auto mix_env = bench::tool_env({"MIX_BUILD_PATH=" + (scratch / ("build-" + name)).string()});
    std::vector<std::string> oneshot = {SANDBOX_BINARY, "incremental", engine_copy.string(), "--compiler", "mix", "--json"};
    if (!bench::toolchain().empty()) {
      oneshot.insert(oneshot.end(), {"--toolchain", bench::toolchain()});
    }
    engine_compile(engine_copy, nullptr);
    if (bench::run({bench::tool("mix"), "compile"}, mix_copy, mix_env).status != 0) {
      std::fprintf(stderr, "%s: first mix compile failed\n", name.c_str());
      return 1;
    }
    std::vector<double> mix_nochange, engine_nochange, oneshot_nochange, mix_leaf, engine_leaf, oneshot_leaf;
    for (int i = 0; i < runs; ++i) {
      mix_nochange.push_back(bench::run({bench::tool("mix"), "compile"}, mix_copy, mix_env).seconds);
      wait_for_idle_worker(); // a host at rest: no worker booting alongside
      engine_nochange.push_back(engine_compile(engine_copy, "cache_hit"));
      oneshot_nochange.push_back(bench::run(oneshot, scratch, engine_env).seconds);
    }
    for (int i = 0; i < runs; ++i) {
      edit(mix_copy / leaf.file, leaf.anchor, i);
      edit(engine_copy / leaf.file, leaf.anchor, i);
      auto m = bench::run({bench::tool("mix"), "compile"}, mix_copy, mix_env);
      if (m.status != 0) {
        std::fprintf(stderr, "%s: mix compile of edit %d failed\n", name.c_str(), i);
        return 1;
      }
      mix_leaf.push_back(m.seconds);
      wait_for_idle_worker();
      engine_leaf.push_back(engine_compile(engine_copy, "incremental"));
    }
    for (int i = 0; i < runs; ++i) {
      edit(engine_copy / leaf.file, leaf.anchor, i + 5);
      auto e = bench::run(oneshot, scratch, engine_env);
      if (e.status != 0) {
        std::fprintf(stderr, "%s: one-shot edit %d failed\n", name.c_str(), i);
        return 1;
      }
      oneshot_leaf.push_back(e.seconds);
    }
    double nc = bench::median(mix_nochange) / bench::median(engine_nochange);
    double lf = bench::median(mix_leaf) / bench::median(engine_leaf);
    double os = bench::median(mix_leaf) / bench::median(oneshot_leaf);
    std::printf("%-16s %-22s %10.3f %10.3f %7.1fx\n", name.c_str(), "no change", bench::median(mix_nochange),
                bench::median(engine_nochange), nc);
    std::printf("%-16s %-22s %10.3f %10.3f %7.1fx\n", name.c_str(), "no change, one-shot cli",
                bench::median(mix_nochange), bench::median(oneshot_nochange),
                bench::median(mix_nochange) / bench::median(oneshot_nochange));
    std::printf("%-16s %-22s %10.3f %10.3f %7.1fx\n", name.c_str(), "leaf edit", bench::median(mix_leaf),
                bench::median(engine_leaf), lf);
    std::printf("%-16s %-22s %10.3f %10.3f %7.1fx\n", name.c_str(), "leaf edit, one-shot cli",
                bench::median(mix_leaf), bench::median(oneshot_leaf), os);
    nochange_ratios.push_back(nc);
    leaf_ratios.push_back(lf);
    oneshot_ratios.push_back(os);
    oneshot_nochange_ratios.push_back(bench::median(mix_nochange) / bench::median(oneshot_nochange));
  }
  // The headline is the worst corpus: a goal holds only when it holds for each.
  auto worst = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  std::printf("BENCH nochange_speedup_vs_mix %.1f x\n", worst(nochange_ratios));
  std::printf("BENCH leaf_edit_speedup_vs_mix %.2f x\n", worst(leaf_ratios));
  std::printf("BENCH nochange_oneshot_speedup_vs_mix %.1f x\n", worst(oneshot_nochange_ratios));
  std::printf("BENCH leaf_edit_oneshot_speedup_vs_mix %.2f x\n", worst(oneshot_ratios));
  sandbox::compiler::shutdown_worker_pool();
  bench::fs::remove_all(scratch);
  return 0;
}
