// A fleet of engines on a real redis-server of the test's own: nodes that
// share nothing but Redis (each its own state directory and temp dir), a hit
// on one node for a compile done on another, forged and truncated entries, a
// node killed mid-job, Redis killed and restarted, a gateway with --jobs 0, a
// full queue. docs/fleet.md.

#include "service_support.h"
#include "support/redis_server.h"

#include "fleet/redis.h"

#include <gtest/gtest.h>

#include <deque>
#include <fstream>
#include <memory>
#include <regex>

namespace sandbox::test {
namespace {

class FleetTest : public SandboxTest {
protected:
  struct Node {
    std::string name;
    fs::path socket;
    fs::path tmp;
    fs::path log;
    pid_t pid = -1;
  };

  void SetUp() override
  {
    if (RedisServer::binary().empty()) {
      GTEST_SKIP() << "redis-server is not installed (scripts/install-deps installs it)";
    }
    m_redis = std::make_unique<RedisServer>(scratch() / "redis");
    ASSERT_TRUE(m_redis->start()) << read_text(scratch() / "redis" / "redis.log");
    m_key = scratch() / "fleet.key";
    std::ofstream(m_key) << "a-key-every-node-shares-0123456789\n";
    fs::permissions(m_key, fs::perms::owner_read | fs::perms::owner_write);
  }

  void TearDown() override
  {
    for (auto& node : m_nodes) {
      stop(node);
    }
  }

  Node& start_node(const std::string& name, std::size_t jobs, const std::vector<std::string>& extra = {})
  {
    Node node;
    node.name = name;
    node.socket = scratch() / (name + ".sock");
    node.tmp = scratch() / name / "tmp";
    node.log = scratch() / (name + ".log");
    fs::create_directories(node.tmp);
    std::vector<std::string> args = {sandbox_binary().string(), "serve", "--socket", node.socket.string(),
                                     "--cluster", m_redis->url(), "--fleet-key-file", m_key.string(),
                                     "--claim-timeout", "1500", "--jobs", std::to_string(jobs)};
    args.insert(args.end(), extra.begin(), extra.end());
    node.pid = spawn_service(args, scratch() / name / "state", node.tmp, node.log);
    EXPECT_GT(node.pid, 0);
    for (int i = 0; i < 400 && !Client(node.socket).connected; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_TRUE(Client(node.socket).connected) << read_text(node.log);
    m_nodes.push_back(node);
    if (jobs > 0) {
      // Known to the fleet (its first heartbeat) before the test sends a job:
      // a gateway that sees no node taking jobs compiles locally.
      auto id = node_id(node);
      auto redis = store();
      bool known = false;
      for (int i = 0; i < 400 && redis && !known; ++i) {
        auto score = redis->command({"ZSCORE", "sandbox:nodes:alive", id});
        known = score && score->type == fleet::Reply::Type::string;
        if (!known) {
          std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
      }
      EXPECT_TRUE(known) << read_text(node.log);
    }
    return m_nodes.back();
  }

  void stop(Node& node, int signal = SIGTERM)
  {
    if (node.pid <= 0) {
      return;
    }
    ::kill(node.pid, signal);
    int status = 0;
    auto start = Clock::now();
    while (::waitpid(node.pid, &status, WNOHANG) == 0) {
      if (ms_since(start) > 30'000) {
        ::kill(node.pid, SIGKILL);
        ::waitpid(node.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    node.pid = -1;
  }

  static json call(const Node& node, const json& request, int timeout_ms = 120'000)
  {
    return Client(node.socket).call(request, timeout_ms);
  }

  static std::string node_id(const Node& node)
  {
    return call(node, {{"op", "ping"}})["cluster"].value("node", "");
  }

  // Waits until the node's ping says `state`.
  static bool cluster_state_becomes(const Node& node, const std::string& state, int timeout_ms = 15'000)
  {
    auto start = Clock::now();
    while (ms_since(start) < timeout_ms) {
      auto ping = call(node, {{"op", "ping"}}, 5'000);
      if (ping.is_object() && ping["cluster"].value("state", "") == state) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static bool log_shows(const Node& node, const std::string& text, int timeout_ms = 20'000)
  {
    auto start = Clock::now();
    while (read_text(node.log).find(text) == std::string::npos) {
      if (ms_since(start) > timeout_ms) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  // Finished jobs of the fleet a node logged (a worker logs the line once the
  // job's temp dirs are gone).
  static long finished_jobs(const Node& node)
  {
    static const std::regex line(R"(job [0-9a-f]+ \([a-z_]+\) for \S+: \S+ in [0-9]+ ms)");
    auto text = read_text(node.log);
    return std::distance(std::sregex_iterator(text.begin(), text.end(), line), std::sregex_iterator());
  }

  // Waits until the nodes together logged `count` finished jobs.
  static bool jobs_finished(const std::vector<const Node*>& nodes, long count, int timeout_ms = 20'000)
  {
    auto start = Clock::now();
    while (true) {
      long found = 0;
      for (const auto* node : nodes) {
        found += finished_jobs(*node);
      }
      if (found >= count) {
        return true;
      }
      if (ms_since(start) > timeout_ms) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  static bool jobs_finished(const Node& node, long count) { return jobs_finished({&node}, count); }

  // Whether `one` (rather than `two`) started the job, once either has.
  static bool first_runs_it(const Node& one, const Node& two)
  {
    auto started = Clock::now();
    while (read_text(one.log).find("running") == std::string::npos &&
           read_text(two.log).find("running") == std::string::npos && ms_since(started) < 20'000) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return read_text(one.log).find("running") != std::string::npos;
  }

  static json compile_request(const fs::path& path, json options = json::object())
  {
    options["compiler"] = "elixirc";
    return {{"op", "compile"}, {"path", path.string()}, {"options", options}};
  }

  // A module body that starts `sh -c "read x" MARKER` (blocked until the
  // job's processes are killed at its end, seen by its marker) and sleeps.
  fs::path slow_sandbox(const std::string& name, const std::string& marker, int seconds)
  {
    return make_sandbox(name, {{"lib/slow.ex", "defmodule Slow do\n  spawn(fn -> System.cmd(\"sh\", [\"-c\", \"read x\", \"" +
                                                  marker + "\"]) end)\n  Process.sleep(" + std::to_string(seconds * 1000) +
                                                  ")\n  def hi, do: :hi\nend\n"}});
  }

  static bool wait_for_process(const std::string& marker)
  {
    for (int i = 0; i < 1200 && processes_now(marker).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return !processes_now(marker).empty();
  }

  static json slow_options() { return {{"security_scan", false}, {"timeout", 60'000}}; }

  std::unique_ptr<fleet::Redis> store() const
  {
    auto url = fleet::parse_redis_url(m_redis->url());
    auto redis = fleet::Redis::connect(*url, std::chrono::milliseconds{1000}, std::chrono::milliseconds{2000});
    EXPECT_TRUE(redis.has_value());
    return redis ? std::move(*redis) : nullptr;
  }

  static std::vector<fs::path> job_dirs(const Node& node)
  {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(node.tmp)) {
      if (entry.path().filename().string().starts_with("sandbox-job-")) {
        out.push_back(entry.path());
      }
    }
    return out;
  }

  std::unique_ptr<RedisServer> m_redis;
  fs::path m_key;
  std::deque<Node> m_nodes;
};

const std::map<std::string, std::string> kWarningSources = {
  {"lib/greeter.ex", "defmodule Greeter do\n  def hello(name), do: \"hello \" <> name\n  def unused(x), do: 1\nend\n"},
  {"lib/greeter/util.ex", "defmodule Greeter.Util do\n  def twice(f), do: f.() && f.()\nend\n"}};

TEST_F(FleetTest, AHitOnAnotherNodeAtAnotherPathGivesTheSameBeamsAsALocalCompile)
{
  auto& gateway_a = start_node("a", 0);
  auto& worker = start_node("w", 1);
  auto& gateway_b = start_node("b", 0);
  auto first = make_sandbox("first", kWarningSources);
  auto moved = make_sandbox("moved", kWarningSources);

  auto compiled = call(gateway_a, compile_request(first));
  ASSERT_TRUE(compiled.value("ok", false)) << compiled.dump(2) << read_text(worker.log);
  EXPECT_FALSE(compiled.value("cache_hit", true));
  EXPECT_EQ(compiled["fleet"].value("cache", ""), "miss");
  EXPECT_EQ(compiled["fleet"].value("node", ""), node_id(worker));
  expect_success_contract(compiled);
  // The result names this node's temp dir and the caller's paths.
  EXPECT_TRUE(fs::path(compiled["temp_dir"].get<std::string>()).parent_path() == gateway_a.tmp) << compiled["temp_dir"];
  ASSERT_EQ(compiled["warnings"].size(), 1u) << compiled["warnings"].dump();
  EXPECT_EQ(compiled["warnings"][0].value("file", ""), "lib/greeter.ex");

  auto hit = call(gateway_b, compile_request(moved));
  ASSERT_TRUE(hit.value("ok", false)) << hit.dump(2);
  EXPECT_TRUE(hit.value("cache_hit", false));
  EXPECT_EQ(hit["fleet"].value("cache", ""), "hit");
  EXPECT_EQ(hit["modules"], compiled["modules"]);
  EXPECT_TRUE(fs::path(hit["temp_dir"].get<std::string>()).parent_path() == gateway_b.tmp);
  EXPECT_EQ(hit["warnings"], compiled["warnings"]);
  expect_success_contract(hit);

  auto local = compile(moved, {"--compiler", "elixirc", "--no-daemon"});
  ASSERT_EQ(local.exit_code, 0) << local.describe();
  EXPECT_EQ(local.json()["warnings"], compiled["warnings"]);
  auto expected = beam_md5s(result_ebin(local.json()));
  ASSERT_EQ(expected.size(), 2u);
  EXPECT_EQ(beam_md5s(result_ebin(compiled)), expected);
  EXPECT_EQ(beam_md5s(result_ebin(hit)), expected);

  // The worker kept nothing of the job; each gateway holds only its answer.
  ASSERT_TRUE(jobs_finished(worker, 1)) << read_text(worker.log);
  EXPECT_TRUE(job_dirs(worker).empty());
  EXPECT_EQ(job_dirs(gateway_a).size(), 1u);
  EXPECT_EQ(job_dirs(gateway_b).size(), 1u);
  // The answer is the caller's to clean up, like any result.
  auto cleaned = call(gateway_b, {{"op", "cleanup"}, {"temp_dir", hit["temp_dir"]}});
  EXPECT_TRUE(cleaned.value("ok", false)) << cleaned.dump();
}

TEST_F(FleetTest, ForgedOrTruncatedEntriesAreMissesWithAWarningAndNeverServed)
{
  auto& gateway = start_node("g", 0);
  auto& worker = start_node("w", 1);
  auto tree = make_sandbox("tree", kWarningSources);
  auto first = call(gateway, compile_request(tree));
  ASSERT_TRUE(first.value("ok", false)) << first.dump(2);
  auto action = call(gateway, compile_request(tree));
  ASSERT_TRUE(action.value("cache_hit", false)) << action.dump(2);
  auto key = "sandbox:ac:" + action["fleet"].value("action", "");

  auto redis = store();
  ASSERT_TRUE(redis);
  auto entry = redis->command({"GET", key});
  ASSERT_TRUE(entry && entry->type == fleet::Reply::Type::string);
  const std::string genuine = entry->str;

  // A body changed under its old signature: the module list says more.
  auto forged = genuine;
  auto at = forged.find("Greeter.Util");
  ASSERT_NE(at, std::string::npos);
  forged.replace(at, 12, "Greeter.Evil");
  ASSERT_TRUE(redis->command({"SET", key, forged}));
  auto answer = call(gateway, compile_request(tree));
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2);
  EXPECT_FALSE(answer.value("cache_hit", true));
  EXPECT_NE(answer.dump().find("signature does not verify"), std::string::npos) << answer["cache_warnings"].dump();
  EXPECT_EQ(answer["modules"], first["modules"]);
  // The node that compiled it wrote a genuine entry again.
  ASSERT_TRUE(call(gateway, compile_request(tree)).value("cache_hit", false));

  // An entry of another fleet (another key) is foreign.
  auto foreign = "sbx1 " + std::string(64, 'a') + genuine.substr(5 + 64);
  ASSERT_TRUE(redis->command({"SET", key, foreign}));
  answer = call(gateway, compile_request(tree));
  EXPECT_FALSE(answer.value("cache_hit", true));
  EXPECT_NE(answer.dump().find("signature does not verify"), std::string::npos);

  // A truncated output blob: the entry is a miss, the blob is never written out.
  auto hit = call(gateway, compile_request(tree));
  ASSERT_TRUE(hit.value("cache_hit", false));
  auto blobs = redis->command({"KEYS", "sandbox:cas:*"});
  ASSERT_TRUE(blobs && !blobs->elements.empty());
  int truncated = 0;
  for (const auto& blob : blobs->elements) {
    auto value = redis->command({"GET", blob.str});
    if (value && value->str.starts_with("FOR1")) { // a BEAM, an output
      ASSERT_TRUE(redis->command({"SET", blob.str, value->str.substr(0, value->str.size() / 2)}));
      ++truncated;
    }
  }
  ASSERT_GT(truncated, 0);
  answer = call(gateway, compile_request(tree));
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2);
  EXPECT_FALSE(answer.value("cache_hit", true));
  EXPECT_NE(answer.dump().find("does not match its digest"), std::string::npos) << answer.dump(2);
  EXPECT_EQ(beam_md5s(result_ebin(answer)), beam_md5s(result_ebin(first)));
  ASSERT_TRUE(jobs_finished(worker, 4)) << read_text(worker.log);
  EXPECT_TRUE(job_dirs(worker).empty());
}

TEST_F(FleetTest, ANodeKilledMidJobIsReplacedAndTheClientStillGetsItsAnswer)
{
  auto& gateway = start_node("g", 0);
  auto& one = start_node("w1", 1);
  auto& two = start_node("w2", 1);
  const std::string marker = "fleet-kill-" + std::to_string(::getpid());
  auto tree = slow_sandbox("slow", marker, 3);

  Client client(gateway.socket);
  ASSERT_TRUE(client.send(compile_request(tree, slow_options())));
  ASSERT_TRUE(wait_for_process(marker));
  bool first_took_it = first_runs_it(one, two);
  auto& victim = first_took_it ? one : two;
  auto& survivor = first_took_it ? two : one;
  stop(victim, SIGKILL);

  auto answer = client.receive(120'000);
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2) << read_text(survivor.log) << read_text(gateway.log);
  EXPECT_EQ(answer["fleet"].value("node", ""), node_id(survivor));
  EXPECT_TRUE(log_shows(survivor, "claimed again")) << read_text(survivor.log);
  EXPECT_TRUE(answer.value("modules", json::array()).dump().find("Slow") != std::string::npos);
  // The killed node's job died with it; the survivor's ended.
  EXPECT_TRUE(wait_until_gone(marker, 15'000));
  ASSERT_TRUE(jobs_finished(survivor, 1)) << read_text(survivor.log);
  EXPECT_TRUE(job_dirs(survivor).empty());
}

TEST_F(FleetTest, AJobEveryNodeDiesUnderIsAnsweredWithAnErrorNotRunForever)
{
  auto& gateway = start_node("g", 0);
  const std::string marker = "fleet-poison-" + std::to_string(::getpid());
  auto tree = slow_sandbox("slow", marker, 60);
  Client client(gateway.socket);
  // Three nodes take the job in turn and each is killed under it.
  for (int round = 1; round <= 3; ++round) {
    auto& node = start_node("w" + std::to_string(round), 1);
    if (round == 1) {
      ASSERT_TRUE(client.send(compile_request(tree, slow_options())));
    }
    ASSERT_TRUE(log_shows(node, "running")) << read_text(node.log);
    stop(node, SIGKILL);
  }
  auto& last = start_node("w4", 1);
  auto answer = client.receive(120'000);
  ASSERT_FALSE(answer.value("ok", true)) << answer.dump(2);
  EXPECT_EQ(answer["error"].value("type", ""), "compiler_crash");
  EXPECT_NE(answer["error"].value("reason", "").find("taken 3 times"), std::string::npos) << answer.dump();
  EXPECT_EQ(read_text(last.log).find("running"), std::string::npos) << read_text(last.log);
  EXPECT_TRUE(wait_until_gone(marker, 15'000));
}

TEST_F(FleetTest, AJobCompletedTwiceIsHarmless)
{
  auto& gateway = start_node("g", 0);
  auto& one = start_node("w1", 1);
  auto& two = start_node("w2", 1);
  const std::string marker = "fleet-twice-" + std::to_string(::getpid());
  auto tree = slow_sandbox("slow", marker, 3);

  Client client(gateway.socket);
  ASSERT_TRUE(client.send(compile_request(tree, slow_options())));
  bool first_took_it = first_runs_it(one, two);
  auto& paused = first_took_it ? one : two;
  auto& other = first_took_it ? two : one;
  // A node that stops answering (paused, not dead) loses its claim; the job
  // runs again elsewhere, and the paused node, resumed, completes it too.
  ::kill(paused.pid, SIGSTOP);
  auto answer = client.receive(120'000);
  ::kill(paused.pid, SIGCONT);
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2);
  EXPECT_EQ(answer["fleet"].value("node", ""), node_id(other));
  EXPECT_TRUE(log_shows(paused, "(compile) for")) << read_text(paused.log);
  EXPECT_TRUE(log_shows(paused, ": ok in")) << read_text(paused.log);

  // The second answer changed nothing: the next job is answered once, by a node.
  auto small = make_sandbox("small", {{"lib/small.ex", "defmodule Small do\n  def hi, do: :hi\nend\n"}});
  auto next = call(gateway, compile_request(small));
  ASSERT_TRUE(next.value("ok", false)) << next.dump(2);
  EXPECT_EQ(next["modules"], json::array({"Elixir.Small"}));
  EXPECT_EQ(next["fleet"].value("cache", ""), "miss");
  auto redis = store();
  ASSERT_TRUE(redis);
  auto left = redis->command({"XLEN", "sandbox:jobs:stream"});
  ASSERT_TRUE(left);
  EXPECT_EQ(left->integer, 0);
  EXPECT_TRUE(wait_until_gone(marker, 15'000));
  // The slow job twice, the small one once.
  ASSERT_TRUE(jobs_finished({&one, &two}, 3)) << read_text(one.log) << read_text(two.log);
  EXPECT_TRUE(job_dirs(one).empty());
  EXPECT_TRUE(job_dirs(two).empty());
}

TEST_F(FleetTest, RedisKilledMidRunAndRestartedTheNodesCompileLocallyThenRejoin)
{
  auto& gateway = start_node("g", 0);
  auto& worker = start_node("w", 1);
  const std::string marker = "fleet-redis-" + std::to_string(::getpid());
  auto tree = slow_sandbox("slow", marker, 2);

  Client client(gateway.socket);
  ASSERT_TRUE(client.send(compile_request(tree, slow_options())));
  ASSERT_TRUE(log_shows(worker, "running"));
  m_redis->stop(SIGKILL);

  // The gateway stops waiting on the store and compiles on its own slot.
  auto answer = client.receive(120'000);
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2) << read_text(gateway.log);
  EXPECT_EQ(answer["fleet"].value("route", ""), "local") << answer["fleet"].dump();
  EXPECT_NE(answer["fleet"].value("reason", "").find("degraded"), std::string::npos) << answer["fleet"].dump();
  EXPECT_TRUE(cluster_state_becomes(gateway, "degraded"));
  auto ping = call(gateway, {{"op", "ping"}});
  EXPECT_FALSE(ping["cluster"].value("error", "").empty()) << ping.dump();
  auto doctor = call(gateway, {{"op", "doctor"}});
  EXPECT_EQ(doctor["cluster"].value("state", ""), "degraded");
  auto checked = sandbox({"doctor", "--cluster", m_redis->url()});
  EXPECT_EQ(checked.exit_code, 1) << checked.describe();
  EXPECT_NE(checked.out.find("cluster: degraded"), std::string::npos) << checked.out;

  // While the store is away, compiles do not wait for it.
  auto small = make_sandbox("small", {{"lib/small.ex", "defmodule Small do\n  def hi, do: :hi\nend\n"}});
  auto local = call(worker, compile_request(small));
  ASSERT_TRUE(local.value("ok", false)) << local.dump(2);
  EXPECT_EQ(local["fleet"].value("route", ""), "local");

  ASSERT_TRUE(m_redis->start());
  EXPECT_TRUE(cluster_state_becomes(gateway, "ok"));
  EXPECT_TRUE(cluster_state_becomes(worker, "ok"));
  // The restarted store is empty: the worker makes its group again and takes jobs.
  json again;
  for (int i = 0; i < 50; ++i) {
    again = call(gateway, compile_request(small));
    if (again.value("ok", false) && again["fleet"].value("node", "") == node_id(worker)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(again.value("ok", false)) << again.dump(2);
  EXPECT_EQ(again["fleet"].value("node", ""), node_id(worker)) << again.dump(2) << read_text(worker.log);
  auto report = sandbox({"doctor", "--cluster", m_redis->url(), "--json"});
  auto store = report.json();
  ASSERT_TRUE(store.is_object()) << report.describe();
  EXPECT_EQ(store["cluster"].value("state", ""), "ok") << report.out;
  EXPECT_EQ(store["cluster"].value("nodes_taking_jobs", 0), 1);
  EXPECT_FALSE(store["cluster"].value("redis_version", "").empty()) << report.out;
  EXPECT_TRUE(wait_until_gone(marker, 15'000));
}

TEST_F(FleetTest, AFullQueueIsAnsweredBusyAndAGatewayAloneCompilesLocally)
{
  auto& gateway = start_node("g", 0, {"--cluster-queue", "1"});
  // No node takes jobs yet: the gateway compiles on its own slot, saying why.
  auto small = make_sandbox("small", {{"lib/small.ex", "defmodule Small do\n  def hi, do: :hi\nend\n"}});
  auto alone = call(gateway, compile_request(small));
  ASSERT_TRUE(alone.value("ok", false)) << alone.dump(2);
  EXPECT_EQ(alone["fleet"].value("route", ""), "local");
  EXPECT_NE(alone["fleet"].value("reason", "").find("no node"), std::string::npos) << alone["fleet"].dump();

  auto& worker = start_node("w", 1);
  const std::string marker = "fleet-busy-" + std::to_string(::getpid());
  auto tree = slow_sandbox("slow", marker, 3);
  Client first(gateway.socket);
  ASSERT_TRUE(first.send(compile_request(tree, slow_options())));
  ASSERT_TRUE(log_shows(worker, "running"));
  auto busy = call(gateway, compile_request(small));
  ASSERT_FALSE(busy.value("ok", true)) << busy.dump(2);
  EXPECT_EQ(busy["error"].value("type", ""), "busy");
  EXPECT_NE(busy["error"].value("reason", "").find("fleet"), std::string::npos);
  auto answer = first.receive(120'000);
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2);
  EXPECT_EQ(answer["fleet"].value("node", ""), node_id(worker));
}

TEST_F(FleetTest, CompileStringGoesThroughTheFleetWithItsBinaries)
{
  auto& gateway = start_node("g", 0);
  auto& worker = start_node("w", 1);
  json request = {{"op", "compile_string"},
                  {"code", "defmodule FleetString do\n  def answer, do: 42\nend\n"},
                  {"filename", "fleet_string.ex"},
                  {"binaries", true}};
  auto answer = call(gateway, request);
  ASSERT_TRUE(answer.value("ok", false)) << answer.dump(2);
  EXPECT_EQ(answer["fleet"].value("node", ""), node_id(worker));
  ASSERT_EQ(answer["binaries"].size(), 1u);
  EXPECT_EQ(answer["binaries"][0].value("module", ""), "Elixir.FleetString");
  EXPECT_TRUE(answer["temp_dir"].is_null());
  auto again = call(gateway, request);
  ASSERT_TRUE(again.value("ok", false));
  EXPECT_TRUE(again.value("cache_hit", false));
  EXPECT_EQ(again["binaries"][0]["binary"], answer["binaries"][0]["binary"]);
  // Binaries only: nothing is left in either node's temp dir.
  ASSERT_TRUE(jobs_finished(worker, 1)) << read_text(worker.log);
  EXPECT_TRUE(job_dirs(gateway).empty());
  EXPECT_TRUE(job_dirs(worker).empty());
}

TEST_F(FleetTest, BadClusterSettingsAreUsageErrors)
{
  auto socket = (scratch() / "x.sock").string();
  auto no_key = sandbox({"serve", "--socket", socket, "--cluster", m_redis->url()});
  EXPECT_EQ(no_key.exit_code, 2);
  EXPECT_NE(no_key.err.find("--fleet-key-file"), std::string::npos) << no_key.err;
  auto bad_url = sandbox({"serve", "--socket", socket, "--cluster", "http://x", "--fleet-key-file", m_key.string()});
  EXPECT_EQ(bad_url.exit_code, 2);
  EXPECT_NE(bad_url.err.find("redis://"), std::string::npos) << bad_url.err;
  auto open_key = scratch() / "open.key";
  std::ofstream(open_key) << "a-key-every-node-shares-0123456789\n";
  fs::permissions(open_key, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  auto readable = sandbox({"serve", "--socket", socket, "--cluster", m_redis->url(), "--fleet-key-file", open_key.string()});
  EXPECT_EQ(readable.exit_code, 2);
  EXPECT_NE(readable.err.find("readable by others"), std::string::npos) << readable.err;
  auto no_jobs = sandbox({"serve", "--socket", socket, "--jobs", "0"});
  EXPECT_EQ(no_jobs.exit_code, 2);
}

} // namespace
} // namespace sandbox::test
