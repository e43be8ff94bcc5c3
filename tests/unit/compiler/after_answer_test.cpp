#include "compiler/after_answer.h"

#include <atomic>
#include <chrono>
#include <gtest/gtest.h>
#include <thread>
#include <vector>

namespace sandbox::compiler {

namespace {

TEST(AfterAnswer, WithoutTheBackgroundThreadWorkRunsAtOnce)
{
  EXPECT_FALSE(answers_first());
  bool ran = false;
  after_answer([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(AfterAnswer, QueuedWorkRunsInOrderAfterTheCallerAndDrainingWaitsForAllOfIt)
{
  enable_after_answer();
  EXPECT_TRUE(answers_first());
  std::atomic<bool> release{false};
  std::vector<int> order;
  after_answer([&] {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    order.push_back(1);
  });
  after_answer([&] { throw std::runtime_error("work that fails does not stop the rest"); });
  after_answer([&] { order.push_back(2); });
  EXPECT_TRUE(order.empty()); // the caller goes on while the work waits
  release = true;
  drain_after_answer();
  EXPECT_FALSE(answers_first());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(AfterAnswer, AWarningIsHandedOutOnceToItsOwner)
{
  defer_warning("/a", "cache not saved: disk full");
  defer_warning("/b", "other");
  EXPECT_TRUE(take_deferred_warnings("/c").empty());
  EXPECT_EQ(take_deferred_warnings("/a"), std::vector<std::string>{"cache not saved: disk full"});
  EXPECT_TRUE(take_deferred_warnings("/a").empty());
  EXPECT_EQ(take_deferred_warnings("/b"), std::vector<std::string>{"other"});
}

} // namespace

} // namespace sandbox::compiler
