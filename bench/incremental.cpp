// Incremental compilation against Mix's own incremental compile, in one run:
// for each corpus, a whole `sandbox incremental --compiler mix` process with
// nothing changed against `mix compile` with nothing to do, and a one-leaf-file
// edit (a string literal in a function body of a module whose exports nothing
// else depends on changes) against `mix compile` of the same edit. Medians of BENCH_RUNS (default 5).

#include "bench_support.h"

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
  auto scratch = bench::make_temp("sandbox-bench-inc-");
  std::vector<std::string> engine_env = {"SANDBOX_STATE_DIR=" + (scratch / "state").string()};
  std::vector<double> nochange_ratios, leaf_ratios;
  std::printf("%-16s %-10s %10s %10s %8s\n", "corpus", "case", "mix s", "engine s", "speedup");
  for (const auto& [name, leaf] : leaves) {
    auto engine_copy = scratch / ("engine-" + name);
    auto mix_copy = scratch / ("mix-" + name);
    bench::fs::copy(bench::corpora_dir() / name, engine_copy, bench::fs::copy_options::recursive);
    bench::fs::copy(bench::corpora_dir() / name, mix_copy, bench::fs::copy_options::recursive);
    std::vector<std::string> mix_env = {"MIX_BUILD_PATH=" + (scratch / ("build-" + name)).string()};
    std::vector<std::string> engine = {SANDBOX_BINARY, "incremental", engine_copy.string(), "--compiler", "mix", "--json"};
    if (bench::run(engine, scratch, engine_env).status != 0 ||
        bench::run({"mix", "compile"}, mix_copy, mix_env).status != 0) {
      std::fprintf(stderr, "%s: first compile failed\n", name.c_str());
      return 1;
    }
    std::vector<double> mix_nochange, engine_nochange, mix_leaf, engine_leaf;
    for (int i = 0; i < runs; ++i) {
      mix_nochange.push_back(bench::run({"mix", "compile"}, mix_copy, mix_env).seconds);
      engine_nochange.push_back(bench::run(engine, scratch, engine_env).seconds);
    }
    for (int i = 0; i < runs; ++i) {
      edit(mix_copy / leaf.file, leaf.anchor, i);
      edit(engine_copy / leaf.file, leaf.anchor, i);
      auto m = bench::run({"mix", "compile"}, mix_copy, mix_env);
      auto e = bench::run(engine, scratch, engine_env);
      if (m.status != 0 || e.status != 0) {
        std::fprintf(stderr, "%s: edit %d failed (mix %d, engine %d)\n", name.c_str(), i, m.status, e.status);
        return 1;
      }
      mix_leaf.push_back(m.seconds);
      engine_leaf.push_back(e.seconds);
    }
    double nc = bench::median(mix_nochange) / bench::median(engine_nochange);
    double lf = bench::median(mix_leaf) / bench::median(engine_leaf);
    std::printf("%-16s %-10s %10.3f %10.3f %7.1fx\n", name.c_str(), "no change", bench::median(mix_nochange),
                bench::median(engine_nochange), nc);
    std::printf("%-16s %-10s %10.3f %10.3f %7.1fx\n", name.c_str(), "leaf edit", bench::median(mix_leaf),
                bench::median(engine_leaf), lf);
    nochange_ratios.push_back(nc);
    leaf_ratios.push_back(lf);
  }
  std::printf("BENCH nochange_speedup_vs_mix %.1f x\n", bench::median(nochange_ratios));
  std::printf("BENCH leaf_edit_speedup_vs_mix %.2f x\n", bench::median(leaf_ratios));
  bench::fs::remove_all(scratch);
  return 0;
}
