// The cost of acting as the caller on a shared service, per request, against
// a caller with the engine's rights (today's path), in the same run:
//   - a compile_string with an output directory: the output is made in the
//     engine's scratch directory and written into the caller's directory as
//     the caller (CallerScope::output + finish), against writing it in place;
//   - the mirror of a caller's tree (compile, incremental, scan): the first
//     copy, and the check of an unchanged tree that every request makes.
// Needs root (it acts as uid 65534). BENCH_N requests (default 200).

#include "bench_support.h"

#include "service/caller_scope.h"

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <fstream>

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using sandbox::service::Caller;
using sandbox::service::CallerScope;

constexpr uid_t kNobody = 65534;

double ms_since(Clock::time_point start)
{
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One compile_string's worth of output handling; the BEAM is "compiled" by
// copying a real one into the directory the engine is told to use.
double one_request(const Caller& caller, const bench::fs::path& beam, const bench::fs::path& target)
{
  auto start = Clock::now();
  CallerScope scope(caller);
  auto out = scope.output(target.string());
  bench::fs::create_directories(out);
  auto made = out / beam.filename();
  bench::fs::copy_file(beam, made, bench::fs::copy_options::overwrite_existing);
  json response = {{"ok", true}, {"beam_files", {made.string()}}, {"output", ""}};
  response = scope.finish(std::move(response));
  double ms = ms_since(start);
  if (!response.value("ok", false)) {
    std::fprintf(stderr, "request failed: %s\n", response.dump().c_str());
    std::exit(1);
  }
  return ms;
}

void write_tree(const bench::fs::path& root, int files)
{
  for (int i = 0; i < files; ++i) {
    auto path = root / "lib" / ("dir" + std::to_string(i % 20)) / ("m" + std::to_string(i) + ".ex");
    bench::fs::create_directories(path.parent_path());
    std::ofstream(path) << "defmodule M" << i << " do\n  def f(x), do: x + " << i << "\nend\n";
  }
}

} // namespace

int main()
{
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_caller acts as another user: run it as root\n");
    return 2;
  }
  const int n = std::max(10, std::atoi(std::getenv("BENCH_N") ? std::getenv("BENCH_N") : "200"));
  auto scratch = bench::make_temp("sandbox-bench-caller-");
  ::chmod(scratch.c_str(), 0755);
  ::setenv("SANDBOX_STATE_DIR", (scratch / "state").c_str(), 1);
  ::setenv("TMPDIR", scratch.c_str(), 1);
  auto beam = bench::fs::path("/usr/lib/elixir/lib/elixir/ebin/Elixir.String.beam");
  if (!bench::fs::exists(beam)) {
    std::fprintf(stderr, "no Elixir BEAM at %s to deliver\n", beam.c_str());
    return 2;
  }
  auto root_out = scratch / "root_out";
  auto user_out = scratch / "user_out";
  bench::fs::create_directories(root_out);
  bench::fs::create_directories(user_out);
  ::chown(user_out.c_str(), kNobody, kNobody);

  Caller root = Caller::of_process();
  Caller nobody{kNobody, kNobody, 0, {}};
  std::vector<double> as_engine, as_caller;
  for (int i = 0; i < n; ++i) { // interleaved, so both see the same machine
    as_engine.push_back(one_request(root, beam, root_out));
    as_caller.push_back(one_request(nobody, beam, user_out));
  }

  auto tree = scratch / "tree";
  write_tree(tree, 400);
  for (const auto& entry : bench::fs::recursive_directory_iterator(tree)) {
    ::chown(entry.path().c_str(), kNobody, kNobody);
  }
  auto start = Clock::now();
  bool mirrored = sandbox::service::Mirror::sync(nobody, tree.string()).has_value(); // lock released here
  double first_ms = ms_since(start);
  if (!mirrored) {
    std::fprintf(stderr, "mirror failed\n");
    return 1;
  }
  std::vector<double> again;
  for (int i = 0; i < 20; ++i) {
    auto t = Clock::now();
    auto synced = sandbox::service::Mirror::sync(nobody, tree.string());
    again.push_back(ms_since(t));
  }
  bench::fs::remove_all(scratch);

  double engine_ms = bench::median(as_engine);
  double caller_ms = bench::median(as_caller);
  std::printf("N=%d compile_string outputs (a %ju-byte BEAM), a 400-file tree\n", n,
              static_cast<std::uintmax_t>(bench::fs::file_size(beam)));
  std::printf("BENCH caller_output_as_engine %.3f ms\n", engine_ms);
  std::printf("BENCH caller_output_as_caller %.3f ms\n", caller_ms);
  std::printf("BENCH caller_output_added %.3f ms\n", caller_ms - engine_ms);
  std::printf("BENCH caller_mirror_first_400_files %.1f ms\n", first_ms);
  std::printf("BENCH caller_mirror_unchanged_400_files %.2f ms\n", bench::median(again));
  return 0;
}
