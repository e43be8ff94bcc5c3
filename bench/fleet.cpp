// A fleet of engines on Redis (docs/fleet.md) against the compile itself, all
// in the same run, on a redis-server of its own (unix socket, no persistence):
//
// 1. a fleet hit: decimal (a library of jason's size) compiled through node A
//    and done by a worker node, then asked at node B at another path: the
//    hit's time (median of BENCH_N) against the compile itself (median of 3
//    compiles of the same tree on a plain `sandbox serve`). Goal: 30x.
// 2. the queue's cost per small job: distinct small compile_string jobs, one
//    at a time, through a gateway (--jobs 0) and a worker node, against the
//    same jobs on a plain `sandbox serve`. Goal: at most 10 ms.
// 3. throughput of small jobs from BENCH_CLIENTS concurrent clients through
//    the gateway with one and with two worker nodes (--jobs 1 each).
//
// BENCH_N (default 20), BENCH_CLIENTS (default 4). Needs redis-server
// (scripts/install-deps) and the corpora (../shared/corpora or
// SANDBOX_CORPORA); without either it says so and exits 2.

#include "bench_support.h"
#include "service_client.h"

#include <nlohmann/json.hpp>

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = bench::fs;

int env_int(const char* name, int fallback)
{
  const char* value = std::getenv(name);
  return value && *value ? std::atoi(value) : fallback;
}

double ms_since(Clock::time_point start)
{
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Process {
  pid_t pid = -1;
  void stop(int signal = SIGTERM)
  {
    if (pid > 0) {
      ::kill(pid, signal);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
};

Process spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env = {})
{
  Process p;
  p.pid = ::fork();
  if (p.pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    bench::put_env(env);
    bench::exec_argv(argv);
  }
  return p;
}

bool wait_for(const fs::path& socket)
{
  for (int i = 0; i < 400; ++i) {
    auto pong = bench::call(socket, {{"op", "ping"}});
    if (pong.is_object() && pong.value("ok", false)) {
      return true;
    }
    ::usleep(25'000);
  }
  return false;
}

class Bench {
public:
  explicit Bench(fs::path scratch) : m_scratch(std::move(scratch)) {}

  bool start_redis()
  {
    auto dir = m_scratch / "redis";
    fs::create_directories(dir);
    m_redis = spawn({"redis-server", "--port", "0", "--unixsocket", (dir / "redis.sock").string(), "--unixsocketperm",
                     "700", "--dir", dir.string(), "--save", "", "--appendonly", "no"});
    m_url = "redis+unix://" + (dir / "redis.sock").string();
    for (int i = 0; i < 200 && !fs::exists(dir / "redis.sock"); ++i) {
      ::usleep(25'000);
    }
    m_key = m_scratch / "fleet.key";
    std::ofstream(m_key) << "bench-fleet-key-0123456789abcdef\n";
    fs::permissions(m_key, fs::perms::owner_read | fs::perms::owner_write);
    return fs::exists(dir / "redis.sock");
  }

  // A node (cluster) or a plain service; its socket.
  fs::path node(const std::string& name, int jobs, bool cluster = true)
  {
    auto socket = m_scratch / (name + ".sock");
    fs::create_directories(m_scratch / name / "tmp");
    std::vector<std::string> argv = {SANDBOX_BINARY, "serve", "--socket", socket.string(), "--jobs",
                                     std::to_string(jobs), "--queue", "64"};
    if (cluster) {
      argv.insert(argv.end(), {"--cluster", m_url, "--fleet-key-file", m_key.string()});
    }
    m_nodes.push_back(spawn(argv, {"SANDBOX_STATE_DIR=" + (m_scratch / name / "state").string(),
                                   "TMPDIR=" + (m_scratch / name / "tmp").string()}));
    if (!wait_for(socket)) {
      std::fprintf(stderr, "the node %s did not start\n", name.c_str());
      std::exit(1);
    }
    return socket;
  }

  void stop_node(const fs::path& socket)
  {
    auto pong = bench::call(socket, {{"op", "ping"}});
    auto pid = pong.is_object() ? pong.value("pid", -1) : -1;
    for (auto& p : m_nodes) {
      if (p.pid == pid) {
        p.stop();
      }
    }
  }

  ~Bench()
  {
    for (auto& p : m_nodes) {
      p.stop();
    }
    m_redis.stop();
  }

private:
  fs::path m_scratch;
  Process m_redis;
  std::string m_url;
  fs::path m_key;
  std::vector<Process> m_nodes;
};

// Runs the request, removes what it left; its wall time in ms, or -1.
double timed(const fs::path& socket, const json& request, json* answer = nullptr)
{
  auto start = Clock::now();
  auto response = bench::call(socket, request);
  double ms = ms_since(start);
  if (!response.is_object() || !response.value("ok", false)) {
    std::fprintf(stderr, "request failed: %s\n", response.dump().substr(0, 400).c_str());
    return -1;
  }
  if (response["temp_dir"].is_string()) {
    bench::call(socket, {{"op", "cleanup"}, {"temp_dir", response["temp_dir"]}});
  }
  if (answer != nullptr) {
    *answer = response;
  }
  return ms;
}

json small_job(int i, const std::string& salt)
{
  return {{"op", "compile_string"},
          {"code", "defmodule Fleet" + salt + std::to_string(i) + " do\n  def value, do: " + std::to_string(i) +
                     "\n  def double(x), do: x * 2\nend\n"},
          {"filename", "bench.ex"},
          {"binaries", true}};
}

double throughput(const fs::path& gateway, int clients, int n, const std::string& salt)
{
  std::atomic<int> next{0}, failed{0};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        failed += timed(gateway, small_job(i, salt)) < 0 ? 1 : 0;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  return failed > 0 ? 0.0 : n / (ms_since(start) / 1000.0);
}

} // namespace

int main()
{
  if (::access("/usr/bin/redis-server", X_OK) != 0) {
    std::fprintf(stderr, "redis-server is not installed (scripts/install-deps installs it)\n");
    return 2;
  }
  auto corpora = bench::corpora_dir();
  const int n = env_int("BENCH_N", 20);
  const int clients = env_int("BENCH_CLIENTS", 4);
  auto scratch = bench::make_temp("sandbox-bench-fleet-");
  {
    Bench bench(scratch);
    if (!bench.start_redis()) {
      std::fprintf(stderr, "redis-server did not start\n");
      return 1;
    }
    auto here = scratch / "here" / "decimal";
    auto there = scratch / "there" / "decimal";
    fs::create_directories(here.parent_path());
    fs::create_directories(there.parent_path());
    fs::copy(corpora / "decimal", here, fs::copy_options::recursive);
    fs::copy(corpora / "decimal", there, fs::copy_options::recursive);

    // 1. The compile itself, on a plain service.
    auto plain = bench.node("plain", 1, false);
    std::vector<double> compiles;
    for (int i = 0; i < 3; ++i) {
      compiles.push_back(timed(plain, {{"op", "compile"}, {"path", here.string()}}));
    }
    // Small jobs on the plain service (the warm pool started by the first).
    timed(plain, small_job(0, "Warm"));
    std::vector<double> local_small;
    for (int i = 0; i < n; ++i) {
      local_small.push_back(timed(plain, small_job(i, "Local")));
    }
    bench.stop_node(plain);

    auto a = bench.node("a", 0);
    auto b = bench.node("b", 0);
    auto worker = bench.node("w1", 1);
    json first;
    double miss = timed(a, {{"op", "compile"}, {"path", here.string()}}, &first);
    std::vector<double> hits;
    json hit;
    for (int i = 0; i < n; ++i) {
      hits.push_back(timed(b, {{"op", "compile"}, {"path", there.string()}}, &hit));
    }
    if (!hit.value("cache_hit", false)) {
      std::fprintf(stderr, "the compile at node b was not a fleet hit: %s\n", hit.dump().substr(0, 400).c_str());
      return 1;
    }

    // 2. Small jobs through the gateway, done by the worker node.
    timed(a, small_job(0, "WarmFleet"));
    std::vector<double> fleet_small;
    for (int i = 0; i < n; ++i) {
      fleet_small.push_back(timed(a, small_job(i, "Fleet")));
    }

    // 3. Throughput with one, then two worker nodes.
    double one = throughput(a, clients, n * 2, "One");
    auto worker2 = bench.node("w2", 1);
    timed(worker2, small_job(0, "WarmTwo")); // its pool, started (it may run locally)
    double two = throughput(a, clients, n * 2, "Two");
    (void)worker;

    double compile_ms = bench::median(compiles);
    double hit_ms = bench::median(hits);
    double local_ms = bench::median(local_small);
    double fleet_ms = bench::median(fleet_small);
    std::printf("fleet on Redis (redis-server, unix socket), %s, N=%d, %d clients\n", bench::toolchain_label().c_str(),
                n, clients);
    std::printf("  decimal compiled (plain serve, median of 3):   %8.1f ms\n", compile_ms);
    std::printf("  decimal through the fleet, first (a miss):     %8.1f ms\n", miss);
    std::printf("  decimal fleet hit at another node and path:    %8.1f ms   %.1fx faster than the compile (goal 30x)\n",
                hit_ms, compile_ms / hit_ms);
    std::printf("  small compile_string, plain serve (median):    %8.1f ms\n", local_ms);
    std::printf("  small compile_string via gateway + worker:     %8.1f ms   queue cost %.1f ms per job (goal <= 10)\n",
                fleet_ms, fleet_ms - local_ms);
    std::printf("  throughput of small jobs, 1 worker node:       %8.1f jobs/s\n", one);
    std::printf("  throughput of small jobs, 2 worker nodes:      %8.1f jobs/s (%.2fx; nodes share this machine's cores)\n",
                two, one > 0 ? two / one : 0.0);
    std::printf("BENCH fleet_compile_ms %.1f\n", compile_ms);
    std::printf("BENCH fleet_hit_ms %.1f\n", hit_ms);
    std::printf("BENCH fleet_hit_vs_compile %.1f x\n", compile_ms / hit_ms);
    std::printf("BENCH fleet_queue_cost_ms %.1f\n", fleet_ms - local_ms);
    std::printf("BENCH fleet_small_jobs_one_node %.1f jobs/s\n", one);
    std::printf("BENCH fleet_small_jobs_two_nodes %.1f jobs/s\n", two);
  }
  std::error_code ec;
  fs::remove_all(scratch, ec);
  return 0;
}
