// Hex dependencies (docs/dependencies.md), in one run: a project with three
// dependencies (decimal, nimble_options, and money_fmt, which optionally needs
// decimal) compiled cold through `sandbox compile --package-mirror` (fresh
// state directory: fetch, verify, compile each package in the jail, then the
// project); a second project with the same lock (every package from the
// store); and raw `mix compile` of the same project with the same three
// libraries as path dependencies. Then five projects in one state directory:
// each package must be compiled exactly once. Medians of BENCH_RUNS (default 3).

#include "bench_support.h"
#include "support/package_fixtures.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

namespace {

namespace fs = bench::fs;

void write_tree(const fs::path& root, const std::map<std::string, std::string>& files)
{
  for (const auto& [relative, text] : files) {
    fs::create_directories((root / relative).parent_path());
    std::ofstream(root / relative) << text;
  }
}

// `sandbox compile PATH --json` with a state directory; the parsed result.
nlohmann::json compile_json(const fs::path& project, const fs::path& mirror, const fs::path& state,
                            const fs::path& temp)
{
  auto out = temp / "result.json";
  std::string command = std::string("SANDBOX_STATE_DIR='") + state.string() + "' '" +
                        SANDBOX_BINARY + "' compile '" + project.string() + "' --package-mirror '" +
                        mirror.string() + "' --temp-dir '" + temp.string() + "' --json > '" +
                        out.string() + "' 2>/dev/null";
  (void)std::system(command.c_str());
  std::ifstream in(out);
  return nlohmann::json::parse(in, nullptr, false);
}

// The same three libraries as path dependencies of a plain Mix project.
fs::path path_dependency_project(const fs::path& corpora, const fs::path& root)
{
  for (const std::string name : {"decimal", "nimble_options"}) {
    fs::create_directories(root / "vendor" / name);
    fs::copy(corpora / name / "lib", root / "vendor" / name / "lib", fs::copy_options::recursive);
    fs::copy_file(corpora / name / "mix.exs", root / "vendor" / name / "mix.exs");
  }
  std::string money_mix = sandbox::testing::kMoneyFmtMix;
  auto at = money_mix.find("{:decimal, \"~> 3.0\", optional: true}");
  money_mix.replace(at, std::string("{:decimal, \"~> 3.0\", optional: true}").size(),
                    "{:decimal, path: \"../decimal\", optional: true}");
  // Plain Mix without Hex stops at a Hex-style declaration even when `only:`
  // filters it out; the engine's SCM accepts it, the baseline drops it.
  auto dev = money_mix.find(", {:dialyxir");
  money_mix.erase(dev, money_mix.find('}', dev) + 1 - dev);
  write_tree(root / "vendor" / "money_fmt",
             {{"mix.exs", money_mix}, {"lib/money_fmt.ex", sandbox::testing::kMoneyFmtLib}});
  write_tree(root, {{"mix.exs", "defmodule Raw.MixProject do\n  use Mix.Project\n"
                                "  def project, do: [app: :raw, version: \"0.1.0\", deps: [\n"
                                "    {:money_fmt, path: \"vendor/money_fmt\"},\n"
                                "    {:decimal, path: \"vendor/decimal\"},\n"
                                "    {:nimble_options, path: \"vendor/nimble_options\"}]]\n"
                                "end\n"},
                    {"lib/shop.ex", sandbox::testing::shop_source("Raw")}});
  return root;
}

} // namespace

int main()
{
  int runs = std::getenv("BENCH_RUNS") ? std::atoi(std::getenv("BENCH_RUNS")) : 3;
  const auto corpora = bench::corpora_dir(); // before anything is made: absent, it exits 2
  auto scratch = bench::make_temp("sandbox-bench-deps-");
  // BENCH_KEEP=1 keeps the mirror and the projects, for a look by hand.
  struct Cleanup {
    fs::path dir;
    ~Cleanup()
    {
      if (std::getenv("BENCH_KEEP") != nullptr) {
        std::printf("kept %s\n", dir.c_str());
      } else {
        fs::remove_all(dir);
      }
    }
  } cleanup{scratch};
  auto mirror = sandbox::testing::standard_mirror(corpora, scratch);
  if (!mirror) {
    std::fprintf(stderr, "cannot build the packages: %s\n", mirror.error().c_str());
    return 1;
  }
  auto temp = scratch / "tmp";
  fs::create_directories(temp);
  std::vector<fs::path> projects;
  for (int i = 0; i < 5; ++i) {
    auto name = "proj" + std::to_string(i);
    auto module = "Proj" + std::to_string(i);
    projects.push_back(scratch / name);
    write_tree(projects.back(), sandbox::testing::shop_project(*mirror, name, module));
  }
  auto raw_project = path_dependency_project(corpora, scratch / "raw");

  std::vector<double> cold, second, raw;
  for (int i = 0; i < runs; ++i) {
    auto state = scratch / ("state-" + std::to_string(i));
    auto started = std::chrono::steady_clock::now();
    auto first = compile_json(projects[0], mirror->dir, state, temp);
    cold.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    started = std::chrono::steady_clock::now();
    auto next = compile_json(projects[1], mirror->dir, state, temp);
    second.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (!first.value("ok", false) || !next.value("ok", false)) {
      std::fprintf(stderr, "a compile failed: %s %s\n", first.dump().c_str(), next.dump().c_str());
      return 1;
    }
    auto build = scratch / ("raw-build-" + std::to_string(i));
    auto r = bench::run({"mix", "compile"}, raw_project,
                        {"MIX_BUILD_PATH=" + build.string(),
                         "MIX_DEPS_PATH=" + (build / "deps").string()});
    if (r.status != 0) {
      std::fprintf(stderr, "raw mix compile failed in %s\n", raw_project.c_str());
      return 1;
    }
    raw.push_back(r.seconds);
  }

  // Five projects, one state directory: how many times was each package compiled?
  std::map<std::string, int> compiled;
  auto shared_state = scratch / "state-shared";
  for (const auto& project : projects) {
    auto result = compile_json(project, mirror->dir, shared_state, temp);
    for (const auto& dep : result["dependencies"]) {
      compiled[dep["name"].get<std::string>()] += dep["cached"].get<bool>() ? 0 : 1;
    }
  }

  double cold_s = bench::median(cold);
  double second_s = bench::median(second);
  double raw_s = bench::median(raw);
  std::printf("%-52s %10s\n", "what", "seconds");
  std::printf("%-52s %10.3f\n", "cold: fetch, verify, 3 packages + project", cold_s);
  std::printf("%-52s %10.3f\n", "second project, same lock (packages from the store)", second_s);
  std::printf("%-52s %10.3f\n", "raw mix compile, the 3 as path dependencies", raw_s);
  std::printf("cold / second: %.2fx (goal >= 3x: %s)\n", cold_s / second_s,
              cold_s / second_s >= 3 ? "met" : "MISSED");
  std::printf("raw mix / second: %.2fx (goal >= 3x: %s)\n", raw_s / second_s,
              raw_s / second_s >= 3 ? "met" : "MISSED");
  bool once = compiled.size() == 3;
  for (const auto& [name, count] : compiled) {
    std::printf("compiled across five projects: %s %d time(s)\n", name.c_str(), count);
    once = once && count == 1;
  }
  std::printf("each package compiled exactly once: %s\n", once ? "met" : "MISSED");
  std::printf("BENCH deps_cold_over_second %.3f x\n", cold_s / second_s);
  std::printf("BENCH deps_raw_mix_over_second %.3f x\n", raw_s / second_s);
  return 0;
}
