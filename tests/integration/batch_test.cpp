// `sandbox compile A B C`: several sandboxes at once, plain progress lines
// off a terminal, a live status line on one (a pty via script(1)), a summary,
// and --json with one result per sandbox.

#include "support.h"

#include <regex>

namespace sandbox::test {
namespace {

using nlohmann::json;

class BatchTest : public SandboxTest {
protected:
  fs::path good(const std::string& name, const std::string& module)
  {
    return make_sandbox(name, {{"lib/m.ex", "defmodule " + module + " do\n  def f, do: 1\nend\n"}});
  }
  fs::path bad(const std::string& name)
  {
    return make_sandbox(name, {{"lib/m.ex", "defmodule Bad do\n  def f, do: nope()\nend\n"}});
  }
};

TEST_F(BatchTest, PlainLinesAndSummaryOffATerminal)
{
  auto a = good("batch_a", "BatchA"), b = good("batch_b", "BatchB"), c = bad("batch_c");
  auto run = sandbox({"compile", a.string(), b.string(), c.string(), "--compiler", "elixirc", "--jobs", "2"});
  EXPECT_EQ(run.exit_code, 1) << run.describe();
  for (const auto* name : {"batch_a", "batch_b", "batch_c"}) {
    EXPECT_TRUE(std::regex_search(run.out, std::regex(std::string("\\[[123]/3\\] Compiling ") + name + "\\.\\.\\.")))
      << run.out;
  }
  EXPECT_TRUE(std::regex_search(run.out, std::regex(R"(  \[compiled\] batch_a \d+ms -> /)"))) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex(R"(  \[FAILED\] batch_c \d+ms: \S)"))) << run.out;
  EXPECT_NE(run.out.find("Summary: 2 successful, 1 failed"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find('\r'), std::string::npos) << "no terminal control off a terminal";
  EXPECT_EQ(run.out.find("\033["), std::string::npos);
}

TEST_F(BatchTest, JsonHasOneResultPerSandbox)
{
  auto a = good("json_a", "JsonA"), b = bad("json_b");
  auto run = sandbox({"compile", a.string(), b.string(), "--compiler", "elixirc", "--json"});
  EXPECT_EQ(run.exit_code, 1) << run.describe();
  auto out = run.json();
  ASSERT_TRUE(out.is_object()) << run.out;
  EXPECT_EQ(out["ok"], false);
  EXPECT_EQ(out["total"], 2);
  EXPECT_EQ(out["successful"], 1);
  EXPECT_EQ(out["failed"], 1);
  ASSERT_EQ(out["results"].size(), 2u);
  EXPECT_EQ(out["results"][0]["path"], a.string());
  EXPECT_EQ(out["results"][0]["ok"], true);
  EXPECT_EQ(out["results"][0]["modules"], json::array({"Elixir.JsonA"}));
  EXPECT_EQ(out["results"][1]["error"]["type"], "compilation_failed");
}

TEST_F(BatchTest, AllGoodExitsZeroAndBadOptionsAreUsageErrors)
{
  auto a = good("ok_a", "OkA"), b = good("ok_b", "OkB");
  auto run = sandbox({"compile", a.string(), b.string(), "--compiler", "elixirc"});
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_NE(run.out.find("Summary: 2 successful, 0 failed"), std::string::npos);
  auto bad_option = sandbox({"compile", a.string(), b.string(), "--timeout", "soon"});
  EXPECT_EQ(bad_option.exit_code, 2);
}

TEST_F(BatchTest, LiveStatusLineOnATerminal)
{
  auto a = good("tty_a", "TtyA"), b = good("tty_b", "TtyB"), c = bad("tty_c");
  // script(1) gives the command a pty; its output is what the terminal got.
  std::string command = sandbox_binary().string() + " compile " + a.string() + " " + b.string() + " " +
                        c.string() + " --compiler elixirc --jobs 2";
  auto run = run_process({"script", "-q", "-e", "-c", command, "/dev/null"},
                         with_env({{"SANDBOX_STATE_DIR", state_dir().string()}, {"TMPDIR", job_root().string()}}));
  EXPECT_EQ(run.exit_code, 1) << run.describe();
  // The status line is redrawn in place: done/total, what is compiling, elapsed.
  EXPECT_NE(run.out.find("\r\033[K"), std::string::npos) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex(R"(\[[0-2]/3\] compiling tty_[abc][^\r\n]* \d+\.\ds)"))) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex(R"(\[3/3\] \d+\.\ds)"))) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex(R"(\[FAILED\] tty_c)"))) << run.out;
  EXPECT_NE(run.out.find("Summary: 2 successful, 1 failed"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("Compiling tty_a..."), std::string::npos) << "plain start lines only off a terminal";
}

} // namespace
} // namespace sandbox::test
