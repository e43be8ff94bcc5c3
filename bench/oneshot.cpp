// Whole one-shot commands as a person types them, with the background engine
// (docs/daemon.md), against what they replace, in the same run:
//   - `sandbox incremental` with nothing changed against `mix compile` with
//     nothing to do, on the corpora and on a generated 400-file project;
//   - `sandbox incremental` after a one-line edit of a leaf module against
//     `mix compile` of the same edit;
//   - `sandbox compile-string` of a small module against `elixirc`.
// Goals (docs/performance.md): no change >= 60x, one-file edit >= 5x,
// compile-string >= 10x. Medians of BENCH_RUNS (default 5); BENCH_TEMP_ROOT
// places the commands' temp dirs.

#include "bench_support.h"

#include <fcntl.h>

#include <fstream>
#include <map>
#include <thread>

namespace {

namespace fs = std::filesystem;

using Env = bench::EngineEnv;

double timed(const std::vector<std::string>& argv, const Env& env, const fs::path& cwd,
             const std::vector<std::string>& extra = {}, const std::string& input = "", int* status = nullptr)
{
  return bench::timed_command(argv, env, cwd, extra, input, status);
}

void must(bool ok, const std::string& what)
{
  if (!ok) {
    std::fprintf(stderr, "%s failed\n", what.c_str());
    std::exit(1);
  }
}

// 400 modules in 20 directories; each module calls the one before it.
void generate(const fs::path& root)
{
  fs::create_directories(root / "lib");
  std::ofstream(root / "mix.exs") << "defmodule Big.MixProject do\n  use Mix.Project\n"
                                     "  def project, do: [app: :big, version: \"0.1.0\"]\nend\n";
  for (int i = 0; i < 400; ++i) {
    auto dir = root / "lib" / ("part" + std::to_string(i / 20));
    fs::create_directories(dir);
    std::ofstream(dir / ("m" + std::to_string(i) + ".ex"))
      << "defmodule Big.M" << i << " do\n  @moduledoc \"module " << i << "\"\n"
      << "  def value, do: " << (i == 0 ? std::string("0") : "Big.M" + std::to_string(i - 1) + ".value() + 1")
      << "\n  def name, do: \"m" << i << "\"\nend\n";
  }
}

struct Project {
  std::string name;
  fs::path leaf; // relative: the file edited
  std::string anchor;
};

// Inserts a digit after `anchor` (a one-line edit that changes the code).
void edit(const fs::path& file, const std::string& anchor, int n)
{
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto at = text.find(anchor);
  must(at != std::string::npos, "anchor in " + file.string());
  text.insert(at + anchor.size(), std::to_string(n % 10));
  std::ofstream(file, std::ios::trunc) << text;
}

} // namespace

int main()
{
  int runs = std::getenv("BENCH_RUNS") ? std::atoi(std::getenv("BENCH_RUNS")) : 5;
  const auto corpora = bench::corpora_dir();
  char pattern[] = "/tmp/sandbox-bench-oneshot-XXXXXX";
  fs::path root = ::mkdtemp(pattern);
  // BENCH_TEMP_ROOT: where the commands' temp dirs (and so the results' BEAM
  // copies) are made; a tmpfs there makes result files cheap to create.
  fs::path temp_root = root / "tmp";
  if (const char* chosen = std::getenv("BENCH_TEMP_ROOT"); chosen != nullptr && *chosen == '/') {
    temp_root = fs::path(chosen) / root.filename();
  }
  Env env{(root / "run").string(), (root / "state").string(), temp_root.string()};
  for (const auto& dir : {env.runtime, env.state, env.tmp}) {
    fs::create_directories(dir);
  }
  fs::permissions(env.runtime, fs::perms::owner_all);
  const std::string bin = SANDBOX_BINARY;
  auto home = root / "home";
  fs::create_directories(home);

  std::vector<Project> projects = {
    {"decimal", "lib/decimal/error.ex", "\"#{signal}"},
    {"nimble_options", "lib/nimble_options/validation_error.ex", "\" (in options"},
    {"generated_400", "lib/part0/m0.ex", "\"m0"},
  };
  timed({bin, "daemon", "start"}, env, root);
  std::printf("%-16s %-26s %10s %10s %8s\n", "project", "case", "mix ms", "engine ms", "speedup");
  double worst_nochange = 1e9, worst_edit = 1e9;
  for (const auto& p : projects) {
    auto ours = root / ("engine-" + p.name);
    auto theirs = root / ("mix-" + p.name);
    if (p.name == "generated_400") {
      generate(ours);
      generate(theirs);
    } else {
      fs::copy(corpora / p.name, ours, fs::copy_options::recursive);
      fs::copy(corpora / p.name, theirs, fs::copy_options::recursive);
    }
    std::vector<std::string> mix_env = {"MIX_BUILD_PATH=" + (root / ("build-" + p.name)).string(),
                                        "HOME=" + home.string()};
    const std::vector<std::string> mix = {"mix", "compile"};
    const std::vector<std::string> incremental = {bin, "incremental", ours.string(), "--compiler", "mix"};
    int status = 0;
    timed(mix, env, theirs, mix_env, "", &status);
    must(status == 0, "first mix compile of " + p.name);
    timed(incremental, env, root, {}, "", &status);
    must(status == 0, "first engine compile of " + p.name);
    std::this_thread::sleep_for(std::chrono::seconds(2)); // the engine's warm worker boots
    std::vector<double> mix_nc, eng_nc, eng_b2b, mix_edit, eng_edit;
    for (int i = 0; i < runs; ++i) {
      mix_nc.push_back(timed(mix, env, theirs, mix_env));
      eng_nc.push_back(timed(incremental, env, root, {}, "", &status));
      must(status == 0, "no-change engine compile of " + p.name);
    }
    // The same commands one right after the other: the result the engine
    // prepares after each answer is not ready yet when the next one comes.
    for (int i = 0; i < runs; ++i) {
      eng_b2b.push_back(timed(incremental, env, root, {}, "", &status));
      must(status == 0, "no-change engine compile of " + p.name);
    }
    for (int i = 0; i < runs; ++i) {
      edit(theirs / p.leaf, p.anchor, i);
      edit(ours / p.leaf, p.anchor, i);
      mix_edit.push_back(timed(mix, env, theirs, mix_env, "", &status));
      must(status == 0, "mix compile of an edit of " + p.name);
      std::this_thread::sleep_for(std::chrono::milliseconds(2500)); // a warm worker, as at a terminal
      eng_edit.push_back(timed(incremental, env, root, {}, "", &status));
      must(status == 0, "engine compile of an edit of " + p.name);
    }
    double mn = bench::median(mix_nc) * 1e3, en = bench::median(eng_nc) * 1e3;
    double me = bench::median(mix_edit) * 1e3, ee = bench::median(eng_edit) * 1e3;
    double eb = bench::median(eng_b2b) * 1e3;
    std::printf("%-16s %-26s %10.1f %10.1f %7.1fx\n", p.name.c_str(), "no change", mn, en, mn / en);
    std::printf("%-16s %-26s %10.1f %10.1f %7.1fx\n", p.name.c_str(), "no change, back to back", mn, eb, mn / eb);
    std::printf("%-16s %-26s %10.1f %10.1f %7.1fx\n", p.name.c_str(), "one-line edit of a leaf", me, ee, me / ee);
    worst_nochange = std::min(worst_nochange, mn / en);
    worst_edit = std::min(worst_edit, me / ee);
  }

  auto module = root / "greeter.ex";
  std::ofstream(module) << "defmodule Greeter do\n  def hi(name), do: \"hi \" <> name\nend\n";
  auto out = root / "out";
  fs::create_directories(out);
  std::vector<double> cs, ex;
  for (int i = 0; i < runs; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    int status = 0;
    cs.push_back(timed({bin, "compile-string", "--filename", "greeter.ex", "--out", out.string()}, env, root, {},
                       module.string(), &status));
    must(status == 0, "compile-string");
    ex.push_back(timed({"elixirc", "-o", out.string(), module.string()}, env, root, {"HOME=" + home.string()}, "",
                       &status));
    must(status == 0, "elixirc");
  }
  double c = bench::median(cs) * 1e3, e = bench::median(ex) * 1e3;
  std::printf("%-16s %-26s %10.1f %10.1f %7.1fx   (reference: elixirc)\n", "greeter.ex", "compile-string", e, c, e / c);
  double version = 0;
  double round_trip = 0;
  {
    std::vector<double> v, r;
    for (int i = 0; i < runs * 4; ++i) {
      v.push_back(timed({bin, "--version"}, env, root));
      r.push_back(timed({bin, "daemon", "status"}, env, root));
    }
    version = bench::median(v) * 1e3;
    round_trip = bench::median(r) * 1e3;
  }
  timed({bin, "daemon", "stop"}, env, root);
  fs::remove_all(root);
  fs::remove_all(temp_root);
  std::printf("BENCH oneshot_nochange_speedup_vs_mix %.1f x\n", worst_nochange);
  std::printf("BENCH oneshot_edit_speedup_vs_mix %.1f x\n", worst_edit);
  std::printf("BENCH oneshot_compile_string_speedup_vs_elixirc %.1f x\n", e / c);
  std::printf("BENCH process_start_version_ms %.1f ms\n", version);
  // A request the engine answers without work: start-up, connect, send, read, print.
  std::printf("BENCH engine_round_trip_ms %.1f ms (client overhead over start-up %.1f ms)\n", round_trip,
              round_trip - version);
  return 0;
}
