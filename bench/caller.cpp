// The cost of acting as the caller on a shared service, per request, against
// a caller with the engine's rights (today's path), in the same run:
//   - a compile_string with an output directory: the output is made in the
//     engine's scratch directory and written into the caller's directory as
//     the caller (CallerScope::output + finish), against writing it in place;
//   - the mirror of a caller's tree (compile, incremental, scan): the first
//     copy, and the check of an unchanged tree that every request makes;
//   - end to end: a warm compile_string with an output directory through a
//     real `sandbox serve`, from a client of uid 65534 against a root client,
//     interleaved, each after a pause that lets the pool start a warm worker
//     (BENCH_SERVICE_N rounds, default 30).
// Needs root (it acts as uid 65534). BENCH_N requests (default 200).

#include "bench_support.h"
#include "service_client.h"

#include "service/caller_scope.h"

#include <nlohmann/json.hpp>

#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>

#include <fstream>
#include <optional>

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

// One compile_string through the service with its output in `out`, timed
// from connect to answer; -1 when it failed.
double service_request(const bench::fs::path& socket, const bench::fs::path& out, int i)
{
  json request = {{"op", "compile_string"},
                  {"code", "defmodule CallerBench" + std::to_string(i) + " do\n  def v, do: " + std::to_string(i) + "\nend\n"},
                  {"filename", "caller_bench.ex"},
                  {"output", out.string()}};
  auto start = Clock::now();
  auto response = bench::call(socket, request);
  double ms = ms_since(start);
  if (response.is_discarded() || !response.value("ok", false)) {
    std::fprintf(stderr, "request failed: %s\n", response.is_discarded() ? "no answer" : response.dump().c_str());
    return -1;
  }
  return ms;
}

// The same request from a fresh client process, as root or as uid 65534, so
// that only the caller differs between the two.
double service_request_in_child(const bench::fs::path& socket, const bench::fs::path& out, int i, bool as_nobody)
{
  int fds[2];
  if (::pipe(fds) != 0) {
    return -1;
  }
  pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    if (as_nobody && (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)) {
      ::_exit(1);
    }
    double ms = service_request(socket, out, i);
    ::write(fds[1], &ms, sizeof ms);
    ::_exit(0);
  }
  ::close(fds[1]);
  double ms = -1;
  if (::read(fds[0], &ms, sizeof ms) != sizeof ms) {
    ms = -1;
  }
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  return ms;
}

// A warm compile_string with an output directory through a real service:
// {root client, uid 65534 client} medians, or nothing when a request failed.
std::optional<std::pair<double, double>> end_to_end(const bench::fs::path& scratch, int rounds)
{
  auto socket = scratch / "serve.sock";
  pid_t service = ::fork();
  if (service == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    ::execl(SANDBOX_BINARY, SANDBOX_BINARY, "serve", "--socket", socket.c_str(), "--socket-mode", "0666", "--jobs", "1",
            "--workers", "2", "--prestart", "2", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 200 && !bench::fs::exists(socket); ++i) {
    ::usleep(25'000);
  }
  auto root_out = scratch / "service_root_out";
  auto user_out = scratch / "service_user_out";
  bench::fs::create_directories(root_out);
  bench::fs::create_directories(user_out);
  ::chown(user_out.c_str(), kNobody, kNobody);
  std::vector<double> as_root, as_nobody;
  bool ok = service_request_in_child(socket, root_out, 0, false) >= 0 &&
            service_request_in_child(socket, user_out, 0, true) >= 0; // warm
  // A worker serves one sandbox; the pause lets the pool start the next, so
  // every timed request finds a warm worker and only the caller differs.
  auto settle = [] { ::usleep(1'000'000); };
  for (int i = 1; ok && i <= rounds; ++i) {
    settle();
    double a = service_request_in_child(socket, root_out, i, false);
    settle();
    double b = service_request_in_child(socket, user_out, i, true);
    ok = a >= 0 && b >= 0;
    as_root.push_back(a);
    as_nobody.push_back(b);
  }
  ::kill(service, SIGTERM);
  ::waitpid(service, nullptr, 0);
  if (!ok) {
    return std::nullopt;
  }
  return std::pair{bench::median(as_root), bench::median(as_nobody)};
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
  const int rounds = std::max(5, std::atoi(std::getenv("BENCH_SERVICE_N") ? std::getenv("BENCH_SERVICE_N") : "30"));
  auto service = end_to_end(scratch, rounds);
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
  if (!service) {
    std::fprintf(stderr, "the end-to-end requests through the service failed\n");
    return 1;
  }
  std::printf("BENCH caller_service_compile_string_as_root %.2f ms\n", service->first);
  std::printf("BENCH caller_service_compile_string_as_caller %.2f ms\n", service->second);
  std::printf("BENCH caller_service_compile_string_added %.2f ms\n", service->second - service->first);
  return 0;
}
