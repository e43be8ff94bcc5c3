// `sandbox serve` driven over its socket: the protocol (good, malformed,
// oversized, unknown requests), concurrency and the busy answer, a client
// that disconnects mid-job, and SIGTERM with jobs running.

#include "service_support.h"

#include "util/fd.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

namespace sandbox::test {
namespace {

using nlohmann::json;
using adversarial::random_token;

TEST_F(ServiceTest, SocketIsPrivateAndPingAnswers)
{
  start();
  struct stat st{};
  ASSERT_EQ(::lstat(socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Client client(socket_path());
  auto pong = client.call({{"op", "ping"}, {"id", 7}});
  EXPECT_EQ(pong["ok"], true) << pong;
  EXPECT_EQ(pong["id"], 7);
  EXPECT_EQ(stop(), 0);
  EXPECT_FALSE(fs::exists(socket_path()));
}

TEST_F(ServiceTest, CompilesValidatesAndCleansUpOverOneConnection)
{
  start();
  Client client(socket_path());
  auto result = client.call(compile_request(small_sandbox("alpha")));
  ASSERT_EQ(result["ok"], true) << result;
  expect_success_contract(result);
  EXPECT_EQ(result["modules"], json::array({"Elixir.Alpha"}));
  auto valid = client.call({{"op", "validate"}, {"beam_files", result["beam_files"]}});
  EXPECT_EQ(valid["ok"], true) << valid;
  auto cleaned = client.call({{"op", "cleanup"}, {"temp_dir", result["temp_dir"]}});
  EXPECT_EQ(cleaned["ok"], true) << cleaned;
  EXPECT_FALSE(fs::exists(result["temp_dir"].get<std::string>()));
  // Engine errors come back typed, and the connection stays usable.
  auto bad_path = client.call({{"op", "compile"}, {"path", "/nonexistent/x"}});
  EXPECT_EQ(bad_path["error"]["type"], "invalid_sandbox_path") << bad_path;
  auto bad_option = client.call({{"op", "compile"}, {"path", "/tmp"}, {"options", {{"timeout", "soon"}}}});
  EXPECT_EQ(bad_option["error"]["type"], "invalid_option") << bad_option;
  EXPECT_EQ(bad_option["error"]["option"], "timeout");
  auto missing = client.call({{"op", "compile_file"}});
  EXPECT_EQ(missing["error"]["type"], "invalid_option") << missing;
  EXPECT_EQ(missing["error"]["option"], "file");
}

TEST_F(ServiceTest, MalformedAndUnknownRequestsAreTypedErrorsAndTheConnectionGoesOn)
{
  start();
  Client client(socket_path());
  ASSERT_TRUE(client.send_raw("this is not json\n"));
  EXPECT_EQ(client.receive()["error"]["type"], "malformed_request");
  EXPECT_EQ(client.call(json::array({1, 2}))["error"]["type"], "malformed_request");
  EXPECT_EQ(client.call({{"id", "x"}})["error"]["type"], "malformed_request");
  auto unknown = client.call({{"op", "format_disk"}, {"id", "u1"}});
  EXPECT_EQ(unknown["error"]["type"], "unknown_operation") << unknown;
  EXPECT_EQ(unknown["error"]["op"], "format_disk");
  EXPECT_EQ(unknown["id"], "u1");
  EXPECT_EQ(client.call({{"op", "ping"}})["ok"], true);
}

TEST_F(ServiceTest, OversizedRequestIsRefusedAndOtherClientsAreUnaffected)
{
  start({"--max-request-bytes", "4K"});
  Client other(socket_path());
  Client big(socket_path());
  ASSERT_TRUE(big.send_raw("{\"op\": \"ping\", \"pad\": \"" + std::string(64 * 1024, 'x')));
  auto refused = big.receive();
  EXPECT_EQ(refused["error"]["type"], "request_too_large") << refused;
  EXPECT_EQ(refused["error"]["limit"], 4096);
  big.receive(2000);
  EXPECT_TRUE(big.eof) << "the connection of an oversized request is closed";
  EXPECT_EQ(other.call({{"op", "ping"}})["ok"], true);
}

TEST_F(ServiceTest, ConcurrentClientsAllGetTheirOwnResults)
{
  start({"--jobs", "2", "--queue", "8"});
  std::vector<std::string> names = {"one", "two", "three", "four"};
  std::vector<fs::path> paths;
  for (const auto& name : names) {
    paths.push_back(small_sandbox(name));
  }
  std::vector<json> results(names.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < names.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = Client(socket_path()).call(compile_request(paths[i])); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    ASSERT_EQ(results[i]["ok"], true) << results[i];
    std::string module = "Elixir." + std::string(1, char(std::toupper(names[i][0]))) + names[i].substr(1);
    EXPECT_EQ(results[i]["modules"], json::array({module}));
  }
}

TEST_F(ServiceTest, FullQueueAnswersBusyAtOnce)
{
  start({"--jobs", "1", "--queue", "0"});
  auto marker = random_token("SERVEBUSY");
  Client first(socket_path());
  ASSERT_TRUE(first.send(compile_request(slow_sandbox(marker), 60'000)));
  ASSERT_TRUE(wait_for_process(marker)) << read_text(scratch() / "serve.log");
  Client second(socket_path());
  auto start_time = Clock::now();
  auto busy = second.call(compile_request(small_sandbox("beta")));
  EXPECT_LT(ms_since(start_time), 2000);
  EXPECT_EQ(busy["error"]["type"], "busy") << busy;
  EXPECT_EQ(busy["error"]["running"], 1);
  // Quick operations are not jobs and are still answered.
  EXPECT_EQ(second.call({{"op", "ping"}})["ok"], true);
  first.close();
  EXPECT_TRUE(wait_until_gone(marker));
}

TEST_F(ServiceTest, ClientDisconnectCancelsItsJobAndKillsItsProcesses)
{
  start();
  auto marker = random_token("SERVEDISC");
  {
    Client client(socket_path());
    ASSERT_TRUE(client.send(compile_request(slow_sandbox(marker), 120'000)));
    ASSERT_TRUE(wait_for_process(marker)) << read_text(scratch() / "serve.log");
  }
  EXPECT_TRUE(wait_until_gone(marker)) << "the job's processes outlived its client";
  // The service is still there, and the cancelled job left no temp dir.
  EXPECT_EQ(Client(socket_path()).call({{"op", "ping"}})["ok"], true);
  for (int i = 0; i < 100 && !job_temp_dirs().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto left = job_temp_dirs();
  EXPECT_TRUE(left.empty()) << (left.empty() ? "" : left.front().string());
  EXPECT_TRUE(log_shows("client disconnected, job cancelled")) << read_text(scratch() / "serve.log");
}

TEST_F(ServiceTest, SigtermCancelsRunningJobsRemovesTheSocketAndLeavesNothing)
{
  start({"--shutdown-grace", "300"});
  auto marker = random_token("SERVETERM");
  Client client(socket_path());
  ASSERT_TRUE(client.send(compile_request(slow_sandbox(marker), 120'000)));
  ASSERT_TRUE(wait_for_process(marker));
  auto start_time = Clock::now();
  EXPECT_EQ(stop(), 0);
  EXPECT_LT(ms_since(start_time), 10'000);
  auto answer = client.receive(5000);
  EXPECT_EQ(answer["error"]["type"], "cancelled") << answer;
  EXPECT_FALSE(fs::exists(socket_path()));
  EXPECT_TRUE(wait_until_gone(marker, 2000));
  EXPECT_TRUE(job_temp_dirs().empty());
}

TEST_F(ServiceTest, SecondServiceOnALiveSocketIsRefusedAndAStaleSocketIsReplaced)
{
  start();
  auto again = sandbox({"serve", "--socket", socket_path().string()}, with_timeout(10'000));
  EXPECT_EQ(again.exit_code, 1) << again.describe();
  EXPECT_NE(again.err.find("already listening"), std::string::npos) << again.err;
  EXPECT_EQ(stop(), 0);
  // A socket file nobody listens on (a killed service) is replaced.
  util::Fd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path().c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  start();
  EXPECT_EQ(Client(socket_path()).call({{"op", "ping"}})["ok"], true);
}

TEST_F(ServiceTest, RequestCommandAnswersOneLineLikeTheService)
{
  auto pong = sandbox({"request"}, with_stdin("{\"op\":\"ping\",\"id\":3}\n"));
  EXPECT_EQ(pong.exit_code, 0) << pong.describe();
  EXPECT_EQ(pong.json()["id"], 3);
  auto unknown = sandbox({"request"}, with_stdin("{\"op\":\"nope\"}\n"));
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.json()["error"]["type"], "unknown_operation");
  auto compiled = sandbox({"request"}, with_stdin(compile_request(small_sandbox("gamma")).dump() + "\n"));
  ASSERT_EQ(compiled.exit_code, 0) << compiled.describe();
  EXPECT_EQ(compiled.json()["modules"], json::array({"Elixir.Gamma"}));
}

// A long-running service compiles an edit in a warm worker; the BEAMs stay
// those of a clean jailed build, paths included (__ENV__.file is compiled in).
TEST_F(ServiceTest, IncrementalEditsCompileInTheWarmPoolAndMatchACleanBuild)
{
  start();
  auto project = make_sandbox(
    "inc", {{"lib/shape.ex", "defmodule Shape do\n  defstruct [:w, :h]\n  def area(%Shape{w: w, h: h}), do: w * h\nend\n"},
            {"lib/user.ex", "defmodule User do\n  def make(w), do: %Shape{w: w, h: 2}\n  def where, do: __ENV__.file\nend\n"},
            {"lib/leaf.ex", "defmodule Leaf do\n  def hi, do: Shape.area(User.make(1))\nend\n"}});
  auto request = [&] {
    return json{{"op", "incremental"},
                {"path", project.string()},
                {"options", {{"compiler", "elixirc"}, {"timeout", 120'000}}}};
  };
  Client client(socket_path());
  auto full = client.call(request());
  ASSERT_TRUE(full.value("ok", false)) << full.dump();
  EXPECT_EQ(full["compilation_strategy"], "full");

  std::ofstream(project / "lib/leaf.ex", std::ios::app) << "defmodule Leaf2 do\n  def x, do: 2\nend\n";
  auto leaf = client.call(request());
  ASSERT_TRUE(leaf.value("ok", false)) << leaf.dump();
  EXPECT_EQ(leaf["compilation_strategy"], "incremental");
  EXPECT_EQ(leaf["changed_files"], json::array({"lib/leaf.ex"}));
  EXPECT_EQ(leaf["isolation"]["mode"], "jail (warm worker)");

  // The struct gains a field: User expands it at compile time and follows.
  std::ofstream(project / "lib/shape.ex", std::ios::trunc)
    << "defmodule Shape do\n  defstruct [:w, :h, d: 1]\n  def area(%Shape{w: w, h: h}), do: w * h\nend\n";
  auto edit = client.call(request());
  ASSERT_TRUE(edit.value("ok", false)) << edit.dump();
  EXPECT_EQ(edit["compilation_strategy"], "incremental");
  auto compiled = edit["changed_files"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(compiled.begin(), compiled.end(), "lib/user.ex"), compiled.end()) << edit.dump();

  // The sources only: the engine may still be writing the cache it keeps in
  // the project, after its answer.
  auto clean = scratch() / "clean";
  fs::create_directories(clean);
  for (const auto& entry : fs::directory_iterator(project)) {
    if (entry.path().filename() != ".sandbox_cache") {
      fs::copy(entry.path(), clean / entry.path().filename(), fs::copy_options::recursive);
    }
  }
  auto reference = compile(clean, {"--compiler", "elixirc"});
  ASSERT_EQ(reference.exit_code, 0) << reference.describe();
  auto expected = beam_md5s(result_ebin(reference.json()));
  EXPECT_EQ(expected.size(), 4u);
  EXPECT_EQ(beam_md5s(result_ebin(edit)), expected);
}

} // namespace
} // namespace sandbox::test
