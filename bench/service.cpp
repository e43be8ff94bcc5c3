// `sandbox serve` against the raw compiler: N small compiles through the
// service (compile_file: a jailed elixirc per job; compile_string: the warm
// worker pool, when this build has it) against N `elixirc` runs, in jobs per
// second; then the latency (p50, p99) of the same requests from several
// concurrent clients. BENCH_N (default 20), BENCH_CLIENTS (default 4),
// BENCH_JOBS (the service's --jobs, default 2), BENCH_WORKERS (its
// --workers, default 2).
//
// The concurrent phase is sustained load: an untimed round (one request per
// client) first grows the pool to its size, then N distinct small modules
// are timed. With the pool it runs three times: with the option
// worker_reuse "never" (a worker per job: single use); with the default
// ("confined") on modules that read the environment while compiling (not
// confined: single use too); and with the default on confined modules (a
// worker serves the next job when the hygiene check passes). All three
// figures come from the same run.

#include "bench_support.h"
#include "service_client.h"

#include <nlohmann/json.hpp>

#include <poll.h>
#include <signal.h>

#include <cstring>
#include <mutex>
#include <thread>

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback)
{
  const char* value = std::getenv(name);
  return value && *value ? std::atoi(value) : fallback;
}

double seconds_since(Clock::time_point start)
{
  return std::chrono::duration<double>(Clock::now() - start).count();
}

using bench::call;

// A module whose compile reads the environment: not confined, so its
// worker is never reused whatever the option says.
std::string unconfined_source(int i)
{
  return "defmodule BenchEnv" + std::to_string(i) + " do\n  @home System.get_env(\"HOME\")\n  def home, do: @home\nend\n";
}

std::string module_source(int i)
{
  return "defmodule Bench" + std::to_string(i) + " do\n  def value, do: " + std::to_string(i) +
         "\n  def double(x), do: x * 2\nend\n";
}

// Runs the request, removes what it left, and says whether it compiled.
bool run_one(const bench::fs::path& socket, const json& request)
{
  auto response = call(socket, request);
  if (response.is_discarded() || !response.value("ok", false)) {
    std::fprintf(stderr, "request failed: %s\n", response.is_discarded() ? "no answer" : response.dump().c_str());
    return false;
  }
  if (response.contains("temp_dir")) {
    call(socket, {{"op", "cleanup"}, {"temp_dir", response["temp_dir"]}});
  }
  return true;
}

double percentile(std::vector<double> values, double p)
{
  std::sort(values.begin(), values.end());
  if (values.empty()) {
    return 0;
  }
  auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

} // namespace

int main()
{
  const int n = env_int("BENCH_N", 20);
  const int clients = std::max(1, env_int("BENCH_CLIENTS", 4));
  const int jobs = std::max(1, env_int("BENCH_JOBS", 2));
  const int workers = std::max(1, env_int("BENCH_WORKERS", 2));
  auto scratch = bench::make_temp("sandbox-bench-service-");
  for (int i = 0; i < n; ++i) {
    auto dir = scratch / ("src" + std::to_string(i));
    bench::fs::create_directories(dir);
    std::FILE* f = std::fopen((dir / "bench.ex").c_str(), "w");
    std::fputs(module_source(i).c_str(), f);
    std::fclose(f);
  }
  bench::fs::create_directories(scratch / "tmp");
  auto socket = scratch / "serve.sock";

  pid_t service = ::fork();
  if (service == 0) {
    ::setenv("TMPDIR", (scratch / "tmp").c_str(), 1);
    ::setenv("SANDBOX_STATE_DIR", (scratch / "state").c_str(), 1);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    auto jobs_text = std::to_string(jobs);
    auto workers_text = std::to_string(workers);
    ::execl(SANDBOX_BINARY, SANDBOX_BINARY, "serve", "--socket", socket.c_str(), "--jobs", jobs_text.c_str(),
            "--workers", workers_text.c_str(), "--queue", "64", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 200 && !bench::fs::exists(socket); ++i) {
    ::usleep(25'000);
  }

  // Raw: one elixirc per module, sequentially.
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto out = scratch / ("raw" + std::to_string(i));
    bench::fs::create_directories(out);
    bench::run({"elixirc", "-o", out.string(), "bench.ex"}, scratch / ("src" + std::to_string(i)));
  }
  double raw_rate = n / seconds_since(start);

  auto file_request = [&](int i) {
    return json{{"op", "compile_file"},
                {"file", (scratch / ("src" + std::to_string(i)) / "bench.ex").string()},
                {"options", {{"validate_beams", true}, {"timeout", 120'000}}}};
  };
  auto string_request = [&](int i, const char* reuse = "confined", bool confined = true) {
    return json{{"op", "compile_string"},      {"code", confined ? module_source(i) : unconfined_source(i)},
                {"filename", "bench.ex"},      {"binaries", true},
                {"options", {{"worker_reuse", reuse}}}};
  };
  bool have_pool = call(socket, string_request(0)).value("ok", false);

  auto sequential = [&](auto make) {
    auto t = Clock::now();
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      ok += run_one(socket, make(i)) ? 1 : 0;
    }
    return ok == n ? n / seconds_since(t) : 0.0;
  };
  double file_rate = sequential(file_request);
  double string_rate = have_pool ? sequential(string_request) : 0.0;

  // Latency with concurrent clients, each sending its share of N requests,
  // after an untimed round that grows the pool to its size. Module numbers
  // start at `base` so no phase compiles a module another phase did.
  struct Phase {
    double rate = 0;
    double p50 = 0;
    double p99 = 0;
    bool ok = true;
  };
  auto concurrent = [&](int base, const char* reuse, bool confined = true) {
    auto request = [&](int i) {
      return have_pool ? string_request(base + i, reuse, confined) : file_request(i % n);
    };
    std::vector<std::thread> warm;
    for (int c = 0; c < clients; ++c) {
      warm.emplace_back([&, c] { run_one(socket, request(n + c)); });
    }
    for (auto& t : warm) {
      t.join();
    }
    std::vector<double> latencies;
    std::mutex mutex;
    auto concurrent_start = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (int i = c; i < n; i += clients) {
          auto t = Clock::now();
          bool ok = run_one(socket, request(i));
          double ms = seconds_since(t) * 1000;
          std::lock_guard lock(mutex);
          latencies.push_back(ok ? ms : -1);
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    Phase phase;
    phase.rate = n / seconds_since(concurrent_start);
    phase.ok = std::none_of(latencies.begin(), latencies.end(), [](double v) { return v < 0; });
    phase.p50 = percentile(latencies, 0.50);
    phase.p99 = percentile(latencies, 0.99);
    return phase;
  };
  Phase single_use;
  Phase unconfined;
  if (have_pool) {
    single_use = concurrent(10'000, "never");
    unconfined = concurrent(30'000, "confined", false);
  }
  Phase shared = concurrent(20'000, "confined");
  bool all_ok = single_use.ok && unconfined.ok && shared.ok;

  ::kill(service, SIGTERM);
  int status = 0;
  ::waitpid(service, &status, 0);
  bench::fs::remove_all(scratch);

  const char* via = have_pool ? "compile_string" : "compile_file";
  std::printf("N=%d, %d concurrent clients, service --jobs %d --workers %d, latency op %s\n", n, clients, jobs,
              workers, via);
  std::printf("BENCH service_raw_elixirc %.2f jobs/s\n", raw_rate);
  std::printf("BENCH service_compile_file %.2f jobs/s\n", file_rate);
  std::printf("BENCH service_compile_file_vs_elixirc %.2f x\n", file_rate / raw_rate);
  if (have_pool) {
    std::printf("BENCH service_compile_string %.2f jobs/s\n", string_rate);
    std::printf("BENCH service_compile_string_vs_elixirc %.2f x\n", string_rate / raw_rate);
  } else {
    std::printf("compile_string: the warm worker pool is not in this build; not measured\n");
  }
  if (have_pool) {
    std::printf("BENCH service_concurrent_compile_string_single_use %.2f jobs/s\n", single_use.rate);
    std::printf("BENCH service_concurrent_compile_string_single_use_p50 %.1f ms\n", single_use.p50);
    std::printf("BENCH service_concurrent_compile_string_single_use_p99 %.1f ms\n", single_use.p99);
    std::printf("BENCH service_concurrent_compile_string_not_confined %.2f jobs/s\n", unconfined.rate);
    std::printf("BENCH service_concurrent_compile_string_not_confined_p50 %.1f ms\n", unconfined.p50);
    std::printf("BENCH service_concurrent_compile_string_not_confined_p99 %.1f ms\n", unconfined.p99);
  }
  std::printf("BENCH service_concurrent_%s %.2f jobs/s\n", via, shared.rate);
  std::printf("BENCH service_concurrent_%s_p50 %.1f ms\n", via, shared.p50);
  std::printf("BENCH service_concurrent_%s_p99 %.1f ms\n", via, shared.p99);
  bool stopped = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!stopped || !all_ok || file_rate == 0) {
    std::fprintf(stderr, "service benchmark: %s\n", !stopped ? "the service did not stop cleanly" : "requests failed");
    return 1;
  }
  return 0;
}
