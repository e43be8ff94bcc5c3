#include "service/job_queue.h"
#include "service/protocol.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace sandbox::service {
namespace {

using nlohmann::json;

TEST(Protocol, ParsesRequestsAndNamesWhatIsWrong)
{
  EXPECT_EQ(answer_line("not json")["error"]["type"], "malformed_request");
  EXPECT_EQ(answer_line("[1]")["error"]["type"], "malformed_request");
  auto no_op = answer_line(R"({"id": 4})");
  EXPECT_EQ(no_op["error"]["type"], "malformed_request");
  EXPECT_EQ(no_op["id"], 4);
  auto unknown = answer_line(R"({"op": "rm", "id": "a"})");
  EXPECT_EQ(unknown["error"]["type"], "unknown_operation");
  EXPECT_EQ(unknown["error"]["op"], "rm");
  EXPECT_EQ(unknown["id"], "a");
  EXPECT_EQ(answer_line(std::string(100, ' '), 10)["error"]["type"], "request_too_large");
  EXPECT_EQ(answer_line(R"({"op": "ping"})")["ok"], true);
}

TEST(Protocol, PingReportsTheProtocolVersionClientsCheck)
{
  auto pong = answer_line(R"({"op": "ping"})");
  EXPECT_EQ(pong["protocol_version"], kServiceProtocolVersion);
  EXPECT_TRUE(pong["version"].is_string());
}

TEST(Protocol, BadArgumentsAreInvalidOptionNamingTheArgument)
{
  auto missing = answer_line(R"({"op": "compile"})");
  EXPECT_EQ(missing["error"]["type"], "invalid_option");
  EXPECT_EQ(missing["error"]["option"], "path");
  auto wrong = answer_line(R"({"op": "validate", "beam_files": "x.beam"})");
  EXPECT_EQ(wrong["error"]["option"], "beam_files");
  auto option = answer_line(R"({"op": "compile", "path": "/tmp", "options": {"memory_limit": "lots"}})");
  EXPECT_EQ(option["error"]["option"], "memory_limit");
  auto flag = answer_line(R"({"op": "compile_in_process", "source": "/a", "output": "/b", "options": {"parallel": 1}})");
  EXPECT_EQ(flag["error"]["option"], "parallel");
}

TEST(Protocol, EveryOperationIsFoundByName)
{
  for (const auto& op : operations()) {
    EXPECT_EQ(find_operation(op.name), &op);
  }
  EXPECT_EQ(find_operation("nope"), nullptr);
  EXPECT_TRUE(find_operation("compile")->is_job);
  EXPECT_FALSE(find_operation("ping")->is_job);
}

TEST(Protocol, Base64)
{
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\0\xff", 2)), "AP8=");
}

TEST(JobQueue, RunsUpToTheLimitQueuesThenRefuses)
{
  JobQueue queue(1, 1);
  std::atomic<bool> release{false};
  auto blocker = [&] {
    while (!release) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return json{{"ok", true}};
  };
  auto first = queue.submit(blocker);
  ASSERT_TRUE(first);
  while (queue.counts().running == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto second = queue.submit(blocker);
  ASSERT_TRUE(second);
  EXPECT_EQ(queue.submit(blocker), nullptr);
  EXPECT_EQ(queue.counts().queued, 1u);
  release = true;
  EXPECT_EQ(first->take_response()["ok"], true);
  EXPECT_EQ(second->take_response()["ok"], true);
}

TEST(JobQueue, CancellingAQueuedJobAnswersCancelledWithoutRunningIt)
{
  JobQueue queue(1, 4);
  std::atomic<bool> release{false};
  std::atomic<bool> ran{false};
  auto first = queue.submit([&] {
    while (!release) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return json{{"ok", true}};
  });
  auto second = queue.submit([&] {
    ran = true;
    return json{{"ok", true}};
  });
  second->cancel("the client disconnected");
  release = true;
  auto response = second->take_response();
  EXPECT_EQ(response["error"]["type"], "cancelled");
  EXPECT_EQ(response["error"]["reason"], "the client disconnected");
  EXPECT_FALSE(ran);
  first->take_response();
}

TEST(JobQueue, ShutdownCancelsRunningJobsAfterTheGrace)
{
  JobQueue queue(1, 0);
  auto job = queue.submit([] {
    // Stands for a runner: it ends once the thread's token is cancelled.
    while (!jail::cancellation_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return json{{"ok", true}};
  });
  queue.shutdown(50, "the service is stopping");
  EXPECT_TRUE(job->done());
  EXPECT_EQ(job->take_response()["error"]["type"], "cancelled");
  EXPECT_EQ(queue.submit([] { return json{{"ok", true}}; }), nullptr);
}

} // namespace
} // namespace sandbox::service
