// The in_process backend end to end: real erl workers in real jails, driven
// through the library (the pool lives in this process) and through
// build/sandbox. After every test the pool is shut down and nothing may be
// left: no job cgroup of this process, no worker directory, no child.

#include "adversarial.h"
#include "support.h"

#include <sys/wait.h>

#include "compiler/in_process_compiler.h"
#include "compiler/isolated_compiler.h"
#include "util/fs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace sandbox::test {
namespace {

namespace compiler = sandbox::compiler;

// Job cgroups named after this process.
std::vector<std::string> own_cgroups()
{
  std::vector<std::string> out;
  auto prefix = "sandbox-job-" + std::to_string(::getpid()) + "-";
  for (const auto& name : adversarial::job_cgroups()) {
    if (fs::path(name).filename().string().starts_with(prefix)) {
      out.push_back(name);
    }
  }
  return out;
}

// Live children of this process. A toolchain check makes this process a
// child subreaper (as it makes the engine one), so helpers of a host `mix`
// run by a test (erl_child_setup, inet_gethost) that outlive their VM come
// back here and exit: such zombies are reaped, not counted.
std::vector<int> own_children()
{
  std::vector<int> out;
  for (int pid : util::list_pids()) {
    auto stat = util::read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (!stat) {
      continue;
    }
    auto close = stat->rfind(')');
    std::istringstream rest(stat->substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) {
      if (state == "Z" && ::waitpid(pid, nullptr, WNOHANG) == pid) {
        continue;
      }
      out.push_back(pid);
    }
  }
  return out;
}

class InProcessTest : public SandboxTest {
protected:
  void SetUp() override
  {
    ::setenv("TMPDIR", (scratch() / "engine-tmp").c_str(), 1);
    fs::create_directories(scratch() / "engine-tmp");
    ::setenv("SANDBOX_STATE_DIR", state_dir().c_str(), 1);
    compiler::configure_worker_pool({2, 1, std::chrono::milliseconds(60'000), false, {}});
  }
  void TearDown() override
  {
    compiler::shutdown_worker_pool();
    EXPECT_TRUE(own_cgroups().empty()) << "a worker cgroup was left";
    for (int pid : own_children()) {
      ADD_FAILURE() << "a worker process was left: " << pid << " "
                    << util::read_proc_file(pid, "stat").substr(0, 200);
    }
    EXPECT_TRUE(entries_with_prefix(scratch() / "engine-tmp", "sandbox-worker-").empty())
      << "a worker directory was left";
    ::unsetenv("TMPDIR");
    ::unsetenv("SANDBOX_STATE_DIR");
  }

  fs::path out(const std::string& name) const { return scratch() / "out" / name; }

  // The worker's references on two corpora against `mix xref graph` of the
  // same toolchain (empty: the system's).
  void references_agree_with_mix_xref(const fs::path& toolchain);

  static core::CompileOptions limits(std::int64_t timeout_ms = 30'000)
  {
    core::CompileOptions options;
    options.timeout_ms = timeout_ms;
    return options;
  }
};

std::string type_of(const core::Error& error) { return core::to_json(error).value("type", ""); }

TEST_F(InProcessTest, CompileStringReturnsItsModules)
{
  auto result = compiler::compile_string(
    "defmodule Greeter do\n  def hello(name), do: \"hi \" <> name\nend\n"
    "defmodule Greeter.Other do\n  def x, do: Greeter.hello(\"x\")\nend\n",
    "greeter.ex", out("a"));
  ASSERT_TRUE(result) << core::describe(result.error());
  std::set<std::string> modules(result->modules.begin(), result->modules.end());
  EXPECT_EQ(modules, (std::set<std::string>{"Elixir.Greeter", "Elixir.Greeter.Other"}));
  ASSERT_EQ(result->beam_files.size(), 2u);
  auto json = compiler::to_json(result);
  EXPECT_EQ(json["modules"].size(), 2u);
  ASSERT_EQ(result->references.size(), 1u);
  EXPECT_EQ(result->references[0].file, "greeter.ex");
  // The module loads and runs in a fresh VM.
  auto run = run_elixir(out("a"), "IO.puts(Greeter.Other.x())");
  EXPECT_EQ(run.out, "hi x\n") << run.describe();
}

TEST_F(InProcessTest, CompileStringWithoutModuleIsNoBytecodeGenerated)
{
  auto result = compiler::compile_string("x = 1 + 1\nIO.puts(x)\n", "script.ex", out("b"));
  ASSERT_FALSE(result);
  EXPECT_TRUE(std::holds_alternative<core::NoBytecodeGenerated>(result.error()))
    << core::describe(result.error());
}

TEST_F(InProcessTest, CompileErrorCarriesDiagnostics)
{
  auto result = compiler::compile_string("defmodule Broken do\n  def f, do: undefined_thing()\nend\n",
                                         "broken.ex", out("c"));
  ASSERT_FALSE(result);
  ASSERT_TRUE(std::holds_alternative<core::CompilationFailed>(result.error()))
    << core::describe(result.error());
  const auto& failed = std::get<core::CompilationFailed>(result.error());
  ASSERT_FALSE(failed.diagnostics.empty());
  EXPECT_EQ(failed.diagnostics[0].file, "broken.ex");
  EXPECT_EQ(failed.diagnostics[0].line, 2);
  EXPECT_EQ(failed.diagnostics[0].severity, core::Severity::error);
}

TEST_F(InProcessTest, WarningsAreStructured)
{
  auto result = compiler::compile_string("defmodule Warn do\n  def f(unused), do: 1\nend\n",
                                         "warn.ex", out("w"));
  ASSERT_TRUE(result) << core::describe(result.error());
  ASSERT_FALSE(result->warnings.empty());
  EXPECT_EQ(result->warnings[0].file, "warn.ex");
  EXPECT_EQ(result->warnings[0].line, 2);
  EXPECT_NE(result->warnings[0].message.find("unused"), std::string::npos);
}

TEST_F(InProcessTest, BadFilenameIsAnInvalidOption)
{
  for (const char* name : {"../x.ex", "a/b.ex", "", "x.erl"}) {
    auto result = compiler::compile_string("defmodule X do end", name, out("d"));
    ASSERT_FALSE(result);
    EXPECT_TRUE(std::holds_alternative<core::InvalidOption>(result.error())) << name;
  }
}

TEST_F(InProcessTest, LoadBeamFilesKeepsTheGivenOrderAndReadsNamesFromTheBeam)
{
  auto result = compiler::compile_string(
    "defmodule Zed do end\ndefmodule Alpha do end\ndefmodule Mid do end\n", "three.ex", out("e"));
  ASSERT_TRUE(result) << core::describe(result.error());
  // A BEAM under a misleading name: the name comes from its atom table.
  fs::copy_file(out("e") / "Elixir.Mid.beam", scratch() / "renamed.beam");
  std::vector<fs::path> order = {out("e") / "Elixir.Zed.beam", scratch() / "renamed.beam",
                                 out("e") / "Elixir.Alpha.beam"};
  auto loaded = compiler::load_beam_files(order);
  ASSERT_TRUE(loaded) << core::describe(loaded.error());
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0].module, "Elixir.Zed");
  EXPECT_EQ((*loaded)[1].module, "Elixir.Mid");
  EXPECT_EQ((*loaded)[2].module, "Elixir.Alpha");
  EXPECT_EQ((*loaded)[1].beam_file, scratch() / "renamed.beam");
  EXPECT_FALSE((*loaded)[0].binary.empty());
  // Garbage is a validation error.
  std::ofstream(scratch() / "junk.beam") << "not a beam";
  auto bad = compiler::load_beam_files({scratch() / "junk.beam"});
  ASSERT_FALSE(bad);
  EXPECT_TRUE(std::holds_alternative<core::BeamValidationFailed>(bad.error()));
}

// --- robustness: every failure kills the worker; the pool keeps serving ----

void expect_pool_still_serves(const fs::path& dir)
{
  auto again = compiler::compile_string("defmodule StillServing do end", "ok.ex", dir);
  ASSERT_TRUE(again) << core::describe(again.error());
  EXPECT_EQ(again->modules, std::vector<std::string>{"Elixir.StillServing"});
}

TEST_F(InProcessTest, WorkerCrashIsCompilerCrash)
{
  auto result = compiler::compile_string("defmodule Crash do\n  :erlang.halt(3)\nend\n", "crash.ex",
                                         out("f"));
  ASSERT_FALSE(result);
  EXPECT_EQ(type_of(result.error()), "compiler_crash") << core::describe(result.error());
  expect_pool_still_serves(out("f2"));
}

TEST_F(InProcessTest, HangPastDeadlineIsCompilationTimeout)
{
  auto started = std::chrono::steady_clock::now();
  auto result = compiler::compile_string("defmodule Hang do\n  Process.sleep(:infinity)\nend\n",
                                         "hang.ex", out("g"), limits(1500));
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(result);
  EXPECT_TRUE(std::holds_alternative<core::CompilationTimeout>(result.error()))
    << core::describe(result.error());
  EXPECT_LT(took, std::chrono::seconds(10));
  expect_pool_still_serves(out("g2"));
}

TEST_F(InProcessTest, OutputFloodIsOutputLimitExceeded)
{
  auto result = compiler::compile_string(
    "defmodule Flood do\n  for _ <- 1..200, do: IO.write(String.duplicate(\"x\", 100_000))\nend\n",
    "flood.ex", out("h"));
  ASSERT_FALSE(result);
  EXPECT_TRUE(std::holds_alternative<core::OutputLimitExceeded>(result.error()))
    << core::describe(result.error());
  expect_pool_still_serves(out("h2"));
}

TEST_F(InProcessTest, OversizedFrameKillsTheWorker)
{
  auto result = compiler::compile_string(
    "defmodule Big do\n"
    "  for p <- Port.list(), do: (try do Port.command(p, :binary.copy(<<0>>, 20_000_000)) rescue _ -> :ok end)\n"
    "  Process.sleep(5000)\n"
    "end\n",
    "big.ex", out("i"));
  ASSERT_FALSE(result);
  EXPECT_TRUE(std::holds_alternative<core::OutputLimitExceeded>(result.error()))
    << core::describe(result.error());
  expect_pool_still_serves(out("i2"));
}

TEST_F(InProcessTest, MalformedFrameKillsTheWorker)
{
  auto result = compiler::compile_string(
    "defmodule Forge do\n"
    "  for p <- Port.list(), do: (try do Port.command(p, \"not a term\") rescue _ -> :ok end)\n"
    "  Process.sleep(5000)\n"
    "end\n",
    "forge.ex", out("j"));
  ASSERT_FALSE(result);
  ASSERT_TRUE(std::holds_alternative<core::CompilerCrash>(result.error()))
    << core::describe(result.error());
  EXPECT_EQ(std::get<core::CompilerCrash>(result.error()).kind, "protocol");
  expect_pool_still_serves(out("j2"));
}

TEST_F(InProcessTest, MemoryHogIsResourceLimitExceeded)
{
  auto options = limits();
  options.memory_limit = 128ull << 20;
  auto result = compiler::compile_string(
    "defmodule Hog do\n  @big :binary.copy(<<1>>, 400_000_000)\n  def size, do: byte_size(@big)\nend\n",
    "hog.ex", out("k"), options);
  ASSERT_FALSE(result);
  ASSERT_TRUE(std::holds_alternative<core::ResourceLimitExceeded>(result.error()))
    << core::describe(result.error());
  EXPECT_EQ(std::get<core::ResourceLimitExceeded>(result.error()).limit_type,
            core::LimitType::memory_limit);
  expect_pool_still_serves(out("k2"));
}

// --- sandboxes ----------------------------------------------------------------

TEST_F(InProcessTest, TwoSandboxesCompileConcurrentlyOnDistinctWorkers)
{
  auto a = make_sandbox("a", {{"lib/a.ex", "defmodule SandA do\n  def v, do: :a\nend\n"}});
  auto b = make_sandbox("b", {{"lib/b.ex", "defmodule SandB do\n  def v, do: :b\nend\n"}});
  // Single-use workers: with confined reuse, B may get A's worker back when
  // A finishes first (WorkerReuseTest covers that); here each job must have
  // a worker of its own while both run.
  compiler::InProcessOptions single_use;
  single_use.limits.worker_reuse = core::WorkerReuse::never;
  auto job_a = std::async(std::launch::async, [&] { return compiler::compile_in_process(a, out("ca"), single_use); });
  auto job_b = std::async(std::launch::async, [&] { return compiler::compile_in_process(b, out("cb"), single_use); });
  auto ra = job_a.get();
  auto rb = job_b.get();
  ASSERT_TRUE(ra) << core::describe(ra.error());
  ASSERT_TRUE(rb) << core::describe(rb.error());
  EXPECT_EQ(ra->modules, std::vector<std::string>{"Elixir.SandA"});
  EXPECT_EQ(rb->modules, std::vector<std::string>{"Elixir.SandB"});
  EXPECT_NE(ra->worker_id, rb->worker_id);
}

TEST_F(InProcessTest, ReusedWorkerNeverServesAnotherSandbox)
{
  compiler::shutdown_worker_pool();
  compiler::configure_worker_pool({2, 1, std::chrono::milliseconds(60'000), true, {}});
  auto a = make_sandbox("a", {{"lib/a.ex", "defmodule ReuseA do\n  def v, do: 1\nend\n"}});
  auto b = make_sandbox("b", {{"lib/b.ex", "defmodule ReuseB do\n  def v, do: 2\nend\n"}});
  auto first = compiler::compile_in_process(a, out("r1"));
  ASSERT_TRUE(first) << core::describe(first.error());
  EXPECT_FALSE(first->reused_worker);
  // The hot-reload loop: an edit, the same sandbox again, the same worker.
  std::ofstream(a / "lib/a.ex") << "defmodule ReuseA do\n  def v, do: 3\nend\n";
  auto second = compiler::compile_in_process(a, out("r2"));
  ASSERT_TRUE(second) << core::describe(second.error());
  EXPECT_TRUE(second->reused_worker);
  EXPECT_EQ(second->worker_id, first->worker_id);
  auto run = run_elixir(out("r2"), "IO.puts(ReuseA.v())");
  EXPECT_EQ(run.out, "3\n") << run.describe();
  // Another sandbox, even with a full pool, gets another worker.
  for (int i = 0; i < 3; ++i) {
    auto other = compiler::compile_in_process(b, out("rb" + std::to_string(i)));
    ASSERT_TRUE(other) << core::describe(other.error());
    EXPECT_NE(other->worker_id, first->worker_id);
    EXPECT_EQ(other->modules, std::vector<std::string>{"Elixir.ReuseB"});
  }
  // A compile error recycles nothing it should not; a crash recycles the worker.
  std::ofstream(a / "lib/a.ex") << "defmodule ReuseA do\n  :erlang.halt(1)\nend\n";
  auto crashed = compiler::compile_in_process(a, out("r3"));
  ASSERT_FALSE(crashed);
  std::ofstream(a / "lib/a.ex") << "defmodule ReuseA do\n  def v, do: 4\nend\n";
  auto after = compiler::compile_in_process(a, out("r4"));
  ASSERT_TRUE(after) << core::describe(after.error());
  EXPECT_NE(after->worker_id, first->worker_id);
}

// --- corpora: the same modules as elixirc, behaving the same ----------------------

std::set<std::string> module_set(const std::vector<std::string>& modules)
{
  return {modules.begin(), modules.end()};
}

struct Corpus {
  const char* name;
  const char* probe; // Elixir code printing something that depends on the modules
};

TEST_F(InProcessTest, CorporaMatchElixirc)
{
  SKIP_WITHOUT_CORPORA();
  for (const Corpus& corpus :
       {Corpus{"nimble_options", "IO.inspect(NimbleOptions.validate([a: 1], [a: [type: :integer]]))"},
        Corpus{"decimal", "IO.puts(Decimal.add(Decimal.new(\"1.10\"), Decimal.new(\"2.205\")))"},
        Corpus{"mime", "IO.inspect({MIME.type(\"json\"), MIME.extensions(\"text/html\")})"}}) {
    SCOPED_TRACE(corpus.name);
    auto sandbox = copy_corpus(corpus.name);
    auto pooled = compiler::compile_in_process(sandbox, out(std::string(corpus.name) + "-pool"));
    ASSERT_TRUE(pooled) << core::describe(pooled.error());
    core::CompileOptions options;
    options.compiler = core::Backend::elixirc;
    auto reference = compiler::compile_sandbox(sandbox.string(), options);
    ASSERT_TRUE(reference) << core::describe(reference.error());
    EXPECT_EQ(module_set(pooled->modules), module_set(reference->modules));
    auto a = run_elixir(out(std::string(corpus.name) + "-pool"), corpus.probe);
    auto b = run_elixir(reference->temp_dir / "ebin", corpus.probe);
    EXPECT_EQ(a.exit_code, 0) << a.describe();
    EXPECT_EQ(a.out, b.out);
    EXPECT_FALSE(a.out.empty());
    (void)compiler::cleanup_temp_artifacts(reference->temp_dir);
  }
}

TEST_F(InProcessTest, ExamplesMatchElixirc)
{
  for (const char* name : {"plain_lib", "hello_mix"}) {
    SCOPED_TRACE(name);
    auto sandbox = copy_example(name);
    auto pooled = compiler::compile_in_process(sandbox, out(std::string(name) + "-pool"));
    core::CompileOptions options;
    options.compiler = core::Backend::elixirc;
    auto reference = compiler::compile_sandbox(sandbox.string(), options);
    ASSERT_EQ(pooled.has_value(), reference.has_value());
    if (pooled) {
      EXPECT_EQ(module_set(pooled->modules), module_set(reference->modules));
      (void)compiler::cleanup_temp_artifacts(reference->temp_dir);
    }
  }
  auto broken = copy_example("compile_error");
  auto failed = compiler::compile_in_process(broken, out("compile_error"));
  ASSERT_FALSE(failed);
  EXPECT_TRUE(std::holds_alternative<core::CompilationFailed>(failed.error()));
}

// --- references against `mix xref graph` ------------------------------------------

using Edges = std::map<std::pair<std::string, std::string>, std::string>; // -> label

// `mix xref graph --format plain` on a copy: file -> file with compile,
// export or runtime (no label).
// `elixir_bin`: the directory of the mix to run; empty: the one in PATH.
Edges mix_xref_edges(const fs::path& project, const fs::path& home, const fs::path& elixir_bin = {})
{
  RunOptions options{"", {{"HOME", home.string()}, {"MIX_HOME", (home / "mix").string()}}, project, 300'000};
  if (!elixir_bin.empty()) {
    const char* path = std::getenv("PATH");
    options.env["PATH"] = elixir_bin.string() + ":" + (path != nullptr ? path : "/usr/bin:/bin");
  }
  auto run = run_process({elixir_bin.empty() ? std::string("mix") : (elixir_bin / "mix").string(), "xref",
                          "graph", "--format", "plain"},
                         options);
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  Edges edges;
  std::string current;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("lib/")) {
      current = line;
      continue;
    }
    auto start = line.find("lib/");
    if (start == std::string::npos || current.empty()) {
      continue;
    }
    auto target = line.substr(start);
    std::string label = "runtime";
    if (auto paren = target.find(" ("); paren != std::string::npos) {
      label = target.substr(paren + 2, target.size() - paren - 3);
      target = target.substr(0, paren);
    }
    edges[{current, target}] = label;
  }
  return edges;
}

// The same edges from the references the worker captured.
Edges captured_edges(const std::vector<core::FileReferences>& references)
{
  std::map<std::string, std::string> defined_in;
  for (const auto& file : references) {
    for (const auto& module : file.modules) {
      defined_in[module] = file.file;
    }
  }
  Edges edges;
  auto rank = [](const std::string& label) {
    return label == "compile" ? 3 : label == "export" ? 2 : 1;
  };
  for (const auto& file : references) {
    auto add = [&](const std::vector<std::string>& modules, const std::string& label) {
      for (const auto& module : modules) {
        auto it = defined_in.find(module);
        if (it == defined_in.end() || it->second == file.file) {
          continue;
        }
        auto& slot = edges[{file.file, it->second}];
        if (slot.empty() || rank(label) > rank(slot)) {
          slot = label;
        }
      }
    };
    add(file.runtime_refs, "runtime");
    add(file.export_refs, "export");
    add(file.compile_refs, "compile");
  }
  return edges;
}

std::string show(const Edges& edges)
{
  std::string out;
  for (const auto& [edge, label] : edges) {
    out += edge.first + " -> " + edge.second + " (" + label + ")\n";
  }
  return out;
}

TEST_F(InProcessTest, ReferencesAgreeWithMixXref)
{
  SKIP_WITHOUT_CORPORA();
  references_agree_with_mix_xref({});
}

// The tracer's events under Elixir 1.18, against 1.18's own `mix xref`.
TEST_F(InProcessTest, ReferencesAgreeWithMixXrefUnderElixir118)
{
  SKIP_WITHOUT_CORPORA();
  SKIP_WITHOUT_ELIXIR_1_18();
  references_agree_with_mix_xref(*elixir_1_18());
}

void InProcessTest::references_agree_with_mix_xref(const fs::path& toolchain)
{
  for (const char* name : {"nimble_options", "decimal"}) {
    SCOPED_TRACE(name);
    auto sandbox = copy_corpus(name);
    compiler::InProcessOptions options;
    options.limits.toolchain = toolchain.string();
    auto pooled = compiler::compile_in_process(sandbox, out(std::string(name) + "-refs"), options);
    ASSERT_TRUE(pooled) << core::describe(pooled.error());
    if (!toolchain.empty()) {
      ASSERT_TRUE(pooled->toolchain);
      EXPECT_EQ(pooled->toolchain->elixir_version, "1.18.4");
    }
    // The oracle runs on its own copy: mix writes _build into it.
    TempTree oracle("sandbox-it-xref-");
    auto expected = mix_xref_edges(oracle.copy_in(corpus_dir(name), name), scratch() / "home",
                                   toolchain.empty() ? fs::path() : toolchain / "bin");
    auto captured = captured_edges(pooled->references);
    EXPECT_FALSE(expected.empty());
    EXPECT_EQ(show(captured), show(expected));
  }
}

// --- through build/sandbox ----------------------------------------------------

TEST_F(InProcessTest, CompileStringCommand)
{
  auto run = sandbox({"compile-string", "--filename", "cli.ex", "--out", out("cli").string(), "--json"},
                     with_stdin("defmodule FromStdin do\n  def x, do: 1\nend\n"));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto json = run.json();
  EXPECT_EQ(json["ok"], true);
  EXPECT_EQ(json["modules"], nlohmann::json::array({"Elixir.FromStdin"}));
  EXPECT_TRUE(fs::exists(out("cli") / "Elixir.FromStdin.beam"));
  auto none = sandbox({"compile-string", "--filename", "none.ex", "--out", out("cli2").string(), "--json"},
                      with_stdin("1 + 1\n"));
  EXPECT_TRUE(is_error(none, "no_bytecode_generated")) << none.describe();
}

TEST_F(InProcessTest, CompileCommandWithInProcessCompiler)
{
  auto project = copy_example("plain_lib");
  auto run = compile(project, {"--compiler", "in_process"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto json = run.json();
  expect_success_contract(json);
  EXPECT_EQ(json["compiler"], "in_process");
  EXPECT_FALSE(json["modules"].empty());
}

} // namespace
} // namespace sandbox::test
