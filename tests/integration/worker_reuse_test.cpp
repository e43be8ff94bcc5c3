// Confined reuse of warm workers (docs/security.md, "Confinement"): real erl
// workers in real jails, driven through the library as the in_process tests
// do. A worker serves the next job of any tenant only after a confined job
// and a clean hygiene check; whatever a submission tries to leave behind is
// either classified not confined or caught by the check, and the next job's
// BEAMs and warnings are byte for byte those of a fresh worker.

#include "service_support.h"
#include "support.h"

#include "backends/toolchain.h"
#include "compiler/in_process_compiler.h"
#include "jail/namespace_runner.h"
#include "util/fs.h"
#include "worker/worker.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::test {
namespace {

namespace compiler = sandbox::compiler;

// What a job produced, as another job's must equal it.
struct Output {
  std::map<std::string, std::string> beams; // file name -> bytes
  std::vector<std::string> warnings;        // "file:line:column: message"

  friend bool operator==(const Output&, const Output&) = default;
};

Output output_of(const compiler::InProcessInfo& info)
{
  Output out;
  for (const auto& file : info.beam_files) {
    auto bytes = util::read_file(file, 64u << 20);
    out.beams[file.filename().string()] = bytes ? *bytes : "unreadable";
  }
  for (const auto& w : info.warnings) {
    out.warnings.push_back(w.file + ":" + std::to_string(w.line) + ":" + std::to_string(w.column) +
                           ": " + w.message);
  }
  return out;
}

// One way of leaving state behind in the VM that compiles the module, and
// the part of the hygiene check that must see it.
struct Hostile {
  const char* name;
  const char* expected; // the category of the first difference
  const char* body;     // the module body
};

const std::vector<Hostile>& hostile_submissions()
{
  static const std::vector<Hostile> list = {
    {"unlinked_process", "processes", "spawn(fn -> Process.sleep(:infinity) end)"},
    {"linked_process", "processes",
     "spawn_link(fn -> Process.flag(:trap_exit, true)\n Process.sleep(:infinity) end)\n  Process.sleep(50)"},
    {"registered_name", "processes", "Process.register(spawn(fn -> Process.sleep(:infinity) end), :sandbox_left)"},
    {"ets_table", "ets_tables",
     ":ets.new(:sandbox_left, [:named_table, :public, {:heir, Process.whereis(:application_controller), nil}])"},
    {"port", "ports",
     "port = Port.open({:spawn, ~c\"cat\"}, [])\n"
     "  true = Port.connect(port, Process.whereis(:application_controller))\n  Process.unlink(port)"},
    {"persistent_term", "persistent_term", ":persistent_term.put(:sandbox_left, 1)"},
    {"application_env", "application_env", "Application.put_env(:elixir, :sandbox_left, 1)"},
    {"code_path", "code_path", ":code.add_pathz(~c\"/sandbox\")"},
    {"compiler_options", "compiler_options", "Code.put_compiler_option(:ignore_module_conflict, true)"},
    {"logger", "persistent_term|logger", ":logger.set_primary_config(:level, :none)"},
    {"loaded_module", "loaded_modules",
     "{:ok, m, b} = :compile.forms([{:attribute, 1, :module, :sandbox_left_behind}])\n"
     "  {:module, _} = :code.load_binary(m, ~c\"nowhere\", b)"},
    {"unstuck_standard_library", "loaded_modules",
     ":code.unstick_dir(:code.lib_dir(:stdlib) ++ ~c\"/ebin\")\n"
     "  Code.compile_string(\"defmodule :base64 do\\n  def encode(_), do: \\\"x\\\"\\nend\")"},
    {"tracer", "trace_flags",
     ":erlang.trace(Process.whereis(:erl_prim_loader), true, [:garbage_collection, {:tracer, Process.whereis(:init)}])"},
    {"apply_in_macro", "persistent_term",
     "defmodule SandboxHostile.Macro do\n"
     "  defmacro hidden(m), do: quote(do: apply(String.to_atom(unquote(m)), :put, [:sandbox_left, 2]))\n"
     "end\n"
     "defmodule SandboxHostile do\n  require SandboxHostile.Macro\n"
     "  @x SandboxHostile.Macro.hidden(\"persistent_term\")\n  def f, do: @x\nend\n"},
    {"os_environment", "os_environment", "System.put_env(\"ERL_COMPILER_OPTIONS\", \"[report]\")"},
    {"named_like_a_loaded_module", "loaded_modules",
     "defmodule Version.Parser do\n  def x, do: 1\nend\ndefmodule SandboxHostile do\n  def f, do: 1\nend\n"},
  };
  return list;
}

std::string hostile_source(const Hostile& h)
{
  if (std::string_view(h.body).starts_with("defmodule")) {
    return h.body; // a whole source
  }
  return "defmodule SandboxHostile do\n  " + std::string(h.body) + "\n  def f, do: 1\nend\n";
}

// A probe with a warning, compiled after each job.
const char* kProbe = "defmodule ReuseProbe do\n  @moduledoc \"probe\"\n  def f(unused), do: [1, 2] |> Enum.map(&(&1 * 2))\n"
                     "  def g(%{a: a}), do: a\nend\n";

// The engine's temp and state directories inside the test's scratch.
class WorkerEnvironment : public SandboxTest {
protected:
  void SetUp() override
  {
    ::setenv("TMPDIR", (scratch() / "engine-tmp").c_str(), 1);
    fs::create_directories(scratch() / "engine-tmp");
    ::setenv("SANDBOX_STATE_DIR", state_dir().c_str(), 1);
  }
  void TearDown() override
  {
    EXPECT_TRUE(entries_with_prefix(scratch() / "engine-tmp", "sandbox-worker-").empty())
      << "a worker directory was left";
    ::unsetenv("TMPDIR");
    ::unsetenv("SANDBOX_STATE_DIR");
  }
};

class WorkerReuseTest : public WorkerEnvironment {
protected:
  void SetUp() override
  {
    WorkerEnvironment::SetUp();
    // One worker: the next job can only run on the worker the last one left.
    compiler::configure_worker_pool({1, 1, std::chrono::milliseconds(60'000), false, {}});
  }
  void TearDown() override
  {
    compiler::shutdown_worker_pool();
    WorkerEnvironment::TearDown();
  }

  static core::CompileOptions options(core::WorkerReuse reuse = core::WorkerReuse::confined)
  {
    core::CompileOptions o;
    o.timeout_ms = 60'000;
    o.worker_reuse = reuse;
    return o;
  }

  compiler::InProcessResult compile(const std::string& code, const std::string& out_name,
                                    core::WorkerReuse reuse = core::WorkerReuse::confined)
  {
    return compiler::compile_string(code, "a.ex", scratch() / "out" / out_name, options(reuse));
  }

  // The probe on a worker that served no job.
  Output fresh(const std::string& code, const std::string& out_name)
  {
    auto r = compile(code, out_name, core::WorkerReuse::never);
    EXPECT_TRUE(r) << core::describe(r.error());
    if (!r) {
      return {};
    }
    EXPECT_FALSE(r->worker.reused);
    EXPECT_FALSE(r->worker.kept);
    return output_of(*r);
  }
};

TEST_F(WorkerReuseTest, ConfinedJobsOfManyTenantsShareAWorkerAndGetFreshOutput)
{
  auto reference = fresh(kProbe, "fresh");
  ASSERT_FALSE(reference.beams.empty());
  ASSERT_EQ(reference.warnings.size(), 1u);
  std::uint64_t worker = 0;
  for (int i = 0; i < 6; ++i) {
    auto tenant = compile("defmodule Tenant" + std::to_string(i) + " do\n  def v, do: " +
                            std::to_string(i) + "\n  def w(x) when is_integer(x), do: x + v()\nend\n",
                          "t" + std::to_string(i));
    ASSERT_TRUE(tenant) << core::describe(tenant.error());
    EXPECT_TRUE(tenant->worker.confined) << tenant->worker.reason;
    EXPECT_TRUE(tenant->worker.kept) << tenant->worker.retired;
    if (i > 0) {
      EXPECT_TRUE(tenant->worker.reused);
      EXPECT_EQ(tenant->worker_id, worker);
    }
    worker = tenant->worker_id;
    auto probe = compile(kProbe, "p" + std::to_string(i));
    ASSERT_TRUE(probe) << core::describe(probe.error());
    EXPECT_TRUE(probe->worker.reused);
    EXPECT_EQ(probe->worker_id, worker);
    EXPECT_TRUE(output_of(*probe) == reference) << "probe after tenant " << i;
  }
}

TEST_F(WorkerReuseTest, NeverGetsAFreshWorkerAndDestroysIt)
{
  auto first = compile("defmodule NeverA do end", "a");
  ASSERT_TRUE(first) << core::describe(first.error());
  EXPECT_TRUE(first->worker.kept);
  auto never = compile("defmodule NeverB do end", "b", core::WorkerReuse::never);
  ASSERT_TRUE(never) << core::describe(never.error());
  EXPECT_FALSE(never->worker.reused);
  EXPECT_NE(never->worker_id, first->worker_id);
  EXPECT_TRUE(never->worker.confined);
  EXPECT_FALSE(never->worker.kept);
  EXPECT_EQ(never->worker.retired, "worker_reuse is never");
  auto next = compile("defmodule NeverC do end", "c");
  ASSERT_TRUE(next) << core::describe(next.error());
  EXPECT_NE(next->worker_id, never->worker_id);
  auto json = compiler::to_json(next);
  ASSERT_TRUE(json.contains("worker"));
  EXPECT_EQ(json["worker"]["confined"], true);
  EXPECT_FALSE(json["worker"].contains("reason"));
}

// The same under another Elixir (1.18: another compiler, other processes).
TEST_F(WorkerReuseTest, ConfinedReuseUnderElixir118)
{
  SKIP_WITHOUT_ELIXIR_1_18();
  auto with_toolchain = [&](core::WorkerReuse reuse) {
    auto o = options(reuse);
    o.toolchain = elixir_1_18()->string();
    return o;
  };
  auto fresh_probe = compiler::compile_string(kProbe, "a.ex", scratch() / "out" / "f", with_toolchain(core::WorkerReuse::never));
  ASSERT_TRUE(fresh_probe) << core::describe(fresh_probe.error());
  ASSERT_TRUE(fresh_probe->toolchain);
  EXPECT_EQ(fresh_probe->toolchain->elixir_version, "1.18.4");
  for (int i = 0; i < 3; ++i) {
    auto tenant = compiler::compile_string("defmodule New" + std::to_string(i) + " do\n  def v, do: 1\nend\n", "a.ex",
                                           scratch() / "out" / ("t" + std::to_string(i)),
                                           with_toolchain(core::WorkerReuse::confined));
    ASSERT_TRUE(tenant) << core::describe(tenant.error());
    EXPECT_TRUE(tenant->worker.confined) << tenant->worker.reason;
    EXPECT_TRUE(tenant->worker.kept) << tenant->worker.retired;
    auto probe = compiler::compile_string(kProbe, "a.ex", scratch() / "out" / ("p" + std::to_string(i)),
                                          with_toolchain(core::WorkerReuse::confined));
    ASSERT_TRUE(probe) << core::describe(probe.error());
    EXPECT_TRUE(probe->worker.reused);
    EXPECT_TRUE(output_of(*probe) == output_of(*fresh_probe));
  }
}

// Hot reload binds a worker to its sandbox; worker_reuse never still gets a
// worker of its own and destroys it.
TEST_F(WorkerReuseTest, NeverOverridesTheSandboxBinding)
{
  compiler::shutdown_worker_pool();
  compiler::configure_worker_pool({1, 1, std::chrono::milliseconds(60'000), true, {}});
  auto project = make_sandbox("hot", {{"lib/hot.ex", "defmodule Hot do\n  def v, do: 1\nend\n"}});
  compiler::InProcessOptions in_process;
  in_process.limits = options(core::WorkerReuse::never);
  auto first = compiler::compile_in_process(project, scratch() / "out" / "hot1", in_process);
  ASSERT_TRUE(first) << core::describe(first.error());
  auto second = compiler::compile_in_process(project, scratch() / "out" / "hot2", in_process);
  ASSERT_TRUE(second) << core::describe(second.error());
  EXPECT_FALSE(second->worker.reused);
  EXPECT_NE(second->worker_id, first->worker_id);
  EXPECT_EQ(second->worker.retired, "worker_reuse is never");
  // The default keeps the binding.
  in_process.limits = options();
  auto third = compiler::compile_in_process(project, scratch() / "out" / "hot3", in_process);
  auto fourth = compiler::compile_in_process(project, scratch() / "out" / "hot4", in_process);
  ASSERT_TRUE(third && fourth);
  EXPECT_EQ(fourth->worker_id, third->worker_id);
  EXPECT_TRUE(fourth->reused_worker);
}

// The job's modules are gone and its sources are not on the worker's disk
// when the next job runs there (a job that is not confined may look).
TEST_F(WorkerReuseTest, TheNextJobSeesNothingOfThePreviousOne)
{
  auto first = compile("defmodule SecretOfTenantA do\n  def secret, do: 42\nend\n", "a");
  ASSERT_TRUE(first) << core::describe(first.error());
  ASSERT_TRUE(first->worker.kept) << first->worker.retired;
  auto look = compiler::compile_string(
    "defmodule Look do\n"
    "  @seen {Code.ensure_loaded?(SecretOfTenantA), File.ls!(\"/sandbox\"),\n"
    "         Enum.sort(File.ls!(\"/job\")) -- [\"home\", \"tmp\"], File.ls!(\"/job/tmp\"), File.ls!(\"/job/home\")}\n"
    "  IO.warn(inspect(@seen), [])\n"
    "  def seen, do: @seen\nend\n",
    "look.ex", scratch() / "out" / "look", options());
  ASSERT_TRUE(look) << core::describe(look.error());
  EXPECT_TRUE(look->worker.reused);
  EXPECT_EQ(look->worker_id, first->worker_id);
  EXPECT_FALSE(look->worker.confined);
  EXPECT_FALSE(look->worker.kept);
  ASSERT_FALSE(look->warnings.empty());
  // Not loaded; only this job's file in /sandbox; only this job's output in /job.
  std::string seen = look->warnings.front().message;
  EXPECT_NE(seen.find("{false, [\"look.ex\"], [\"out-"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\"], [], []}"), std::string::npos) << seen;
}

// Every way of leaving state behind, through the pool: classified not
// confined (or caught by the check), and the probe compiled next on the same
// pool equals the probe on a fresh worker.
TEST_F(WorkerReuseTest, HostileSubmissionsNeverReachTheNextJob)
{
  auto reference = fresh(kProbe, "fresh");
  ASSERT_FALSE(reference.beams.empty());
  int i = 0;
  for (const auto& h : hostile_submissions()) {
    SCOPED_TRACE(h.name);
    auto tag = std::to_string(i++);
    auto warm = compile("defmodule Warm" + tag + " do end", "w" + tag);
    ASSERT_TRUE(warm) << core::describe(warm.error());
    auto hostile = compile(hostile_source(h), "h" + tag);
    if (hostile) {
      EXPECT_TRUE(!hostile->worker.confined || !hostile->worker.kept);
      EXPECT_FALSE(hostile->worker.kept) << hostile->worker.retired;
    }
    auto probe = compile(kProbe, "p" + tag);
    ASSERT_TRUE(probe) << core::describe(probe.error());
    EXPECT_TRUE(output_of(*probe) == reference);
    if (hostile) {
      EXPECT_NE(probe->worker_id, hostile->worker_id);
    }
  }
  // A module named like one the worker has loaded is not confined.
  auto named = compile("defmodule Version.Parser do\n  def x, do: 1\nend\n", "named");
  ASSERT_TRUE(named) << core::describe(named.error());
  EXPECT_FALSE(named->worker.confined);
  EXPECT_NE(named->worker.reason.find("Version.Parser"), std::string::npos) << named->worker.reason;
  auto probe = compile(kProbe, "p-named");
  ASSERT_TRUE(probe) << core::describe(probe.error());
  EXPECT_TRUE(output_of(*probe) == reference);
}

// Random sequences of confined and hostile submissions from several tenants
// (a fixed seed: the same sequence every run): each tenant's output equals
// what a fresh worker gives for the same submission.
TEST_F(WorkerReuseTest, RandomTenantSequencesGiveFreshOutput)
{
  const int tenants = 3;
  auto tenant_source = [](int tenant, int version) {
    return "defmodule Tenant" + std::to_string(tenant) + ".Mod" + std::to_string(version) +
           " do\n  @moduledoc \"t\"\n  def v(unused), do: " + std::to_string(tenant * 100 + version) +
           "\n  def s, do: ~w(a b c)a |> Enum.map(&Atom.to_string/1) |> Enum.join()\nend\n";
  };
  std::mt19937 random(20261203);
  std::map<std::string, Output> expected;
  int step = 0;
  int reused = 0;
  for (int n = 0; n < 18; ++n) {
    int tenant = static_cast<int>(random() % tenants);
    bool hostile = random() % 4 == 0;
    auto tag = std::to_string(step++);
    if (hostile) {
      const auto& list = hostile_submissions();
      const auto& h = list[random() % list.size()];
      SCOPED_TRACE(h.name);
      auto r = compile(hostile_source(h), "x" + tag);
      if (r) {
        EXPECT_FALSE(r->worker.kept) << r->worker.retired;
      }
      continue;
    }
    auto source = tenant_source(tenant, static_cast<int>(random() % 3));
    auto r = compile(source, "s" + tag);
    ASSERT_TRUE(r) << core::describe(r.error());
    EXPECT_TRUE(r->worker.confined) << r->worker.reason;
    reused += r->worker.reused ? 1 : 0;
    auto& want = expected[source];
    if (want.beams.empty()) {
      want = fresh(source, "f" + tag);
    }
    EXPECT_TRUE(output_of(*r) == want) << source;
  }
  EXPECT_GT(reused, 0);
}

// The hygiene check itself, on one worker per case: after each hostile job
// the check names the category of what was left.
using WorkerHygieneTest = WorkerEnvironment;

TEST_F(WorkerHygieneTest, TheCheckSeesEveryKindOfLeftover)
{
  jail::NamespaceRunner runner;
  core::CompileOptions defaults;
  worker::WorkerProfile profile{backends::job_limits(defaults), worker::default_worker_env({}, nullptr),
                                nullptr};
  auto run = [&](worker::Worker& w, const std::string& source) {
    for (const auto& entry : fs::directory_iterator(w.sandbox_dir())) {
      (void)util::remove_tree(entry.path());
    }
    EXPECT_TRUE(util::write_file_replace(w.sandbox_dir() / "a.ex", source));
    worker::CompileRequest request;
    request.source_dir = worker::kSandboxInside;
    request.out_dir = std::string(worker::kJobDirInside) + "/out-" + w.next_request_id();
    request.files = {"a.ex"};
    auto reply = w.compile(request, std::chrono::milliseconds(60'000));
    EXPECT_TRUE(reply) << core::describe(reply.error());
    // The submission did what it tries to do: it compiled.
    if (reply) {
      EXPECT_EQ(reply->status, worker::CompileReply::Status::ok)
        << (reply->errors.empty() ? std::string() : reply->errors.front().message);
    }
    auto checked = w.check(50'000, 64L << 20, std::chrono::milliseconds(10'000));
    EXPECT_TRUE(checked) << core::describe(checked.error());
    return checked ? *checked : worker::CheckReply{false, "check failed"};
  };
  {
    auto w = worker::Worker::start(runner, profile);
    ASSERT_TRUE(w) << core::describe(w.error());
    for (int i = 0; i < 3; ++i) {
      auto clean = run(**w, "defmodule Clean" + std::to_string(i) + " do\n  def f(unused), do: 1\nend\n");
      EXPECT_TRUE(clean.clean) << clean.difference;
    }
    // Budgets: a worker over them is not clean.
    auto atoms = (*w)->check(-1, 64L << 20, std::chrono::milliseconds(10'000));
    ASSERT_TRUE(atoms);
    EXPECT_FALSE(atoms->clean);
    EXPECT_TRUE(atoms->difference.starts_with("atoms")) << atoms->difference;
  }
  for (const auto& h : hostile_submissions()) {
    SCOPED_TRACE(h.name);
    auto w = worker::Worker::start(runner, profile);
    ASSERT_TRUE(w) << core::describe(w.error());
    auto checked = run(**w, hostile_source(h));
    EXPECT_FALSE(checked.clean);
    // The first difference found: the expected category (or one of them).
    auto category = checked.difference.substr(0, checked.difference.find(' '));
    auto expected = "|" + std::string(h.expected) + "|";
    EXPECT_NE(expected.find("|" + category + "|"), std::string::npos) << checked.difference;
  }
}

// Through the real service: two tenants on two connections share the one
// warm worker; the option is validated; `compile` with the in_process
// compiler reports the worker too.
using WorkerReuseServiceTest = ServiceTest;

TEST_F(WorkerReuseServiceTest, TenantsShareAWorkerThroughServe)
{
  start({"--jobs", "2", "--workers", "1"});
  Client alice(socket_path());
  Client bob(socket_path());
  ASSERT_TRUE(alice.connected && bob.connected);
  auto request = [](const std::string& code, const json& options) {
    return json{{"op", "compile_string"}, {"code", code}, {"filename", "a.ex"}, {"binaries", true},
                {"options", options}};
  };
  auto a = alice.call(request("defmodule Alice do\n  def v, do: 1\nend\n", json::object()));
  ASSERT_EQ(a.value("ok", false), true) << a;
  EXPECT_EQ(a["worker"]["confined"], true) << a["worker"];
  EXPECT_EQ(a["worker"]["kept"], true) << a["worker"];
  auto b = bob.call(request("defmodule Bob do\n  def v, do: 2\nend\n", json::object()));
  ASSERT_EQ(b.value("ok", false), true) << b;
  EXPECT_EQ(b["worker"]["reused"], true) << b["worker"];
  EXPECT_EQ(b["worker_id"], a["worker_id"]);
  ASSERT_EQ(b["binaries"].size(), 1u);
  EXPECT_EQ(b["binaries"][0]["module"], "Elixir.Bob");

  auto hostile = bob.call(request("defmodule Bad do\n  :persistent_term.put(:k, 1)\nend\n", json::object()));
  ASSERT_EQ(hostile.value("ok", false), true) << hostile;
  EXPECT_EQ(hostile["worker"]["confined"], false);
  EXPECT_NE(hostile["worker"]["reason"].get<std::string>().find("persistent_term"), std::string::npos)
    << hostile["worker"];
  EXPECT_EQ(hostile["worker"]["kept"], false);
  auto after = alice.call(request("defmodule Alice2 do end", json::object()));
  ASSERT_EQ(after.value("ok", false), true) << after;
  EXPECT_NE(after["worker_id"], hostile["worker_id"]);
  EXPECT_EQ(after["worker"]["reused"], false);

  auto never = alice.call(request("defmodule Alice3 do end", {{"worker_reuse", "never"}}));
  ASSERT_EQ(never.value("ok", false), true) << never;
  EXPECT_EQ(never["worker"]["kept"], false);
  EXPECT_EQ(never["worker"]["retired"], "worker_reuse is never");

  auto bad = alice.call(request("defmodule Alice4 do end", {{"worker_reuse", "sometimes"}}));
  EXPECT_EQ(bad.value("ok", true), false) << bad;
  EXPECT_EQ(bad["error"]["type"], "invalid_option") << bad;
  EXPECT_EQ(bad["error"]["option"], "worker_reuse") << bad;
}

TEST_F(WorkerReuseTest, CommandLineReportsTheWorker)
{
  auto never = sandbox({"compile-string", "--filename", "a.ex", "--out", (scratch() / "cli").string(),
                        "--worker-reuse", "never", "--json"},
                       with_stdin("defmodule Cli do end\n"));
  ASSERT_EQ(never.exit_code, 0) << never.describe();
  EXPECT_EQ(never.json()["worker"]["retired"], "worker_reuse is never") << never.out;
  auto bad = sandbox({"compile-string", "--filename", "a.ex", "--out", (scratch() / "cli2").string(),
                      "--worker-reuse", "sometimes", "--json"},
                     with_stdin("defmodule Cli do end\n"));
  EXPECT_TRUE(is_error(bad, "invalid_option", 2)) << bad.describe();
  auto project = make_sandbox("p", {{"lib/p.ex", "defmodule CliProject do\n  def v, do: 1\nend\n"}});
  auto run = SandboxTest::compile(project, {"--compiler", "in_process"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto json = run.json();
  EXPECT_EQ(json["worker"]["confined"], true) << json;
  EXPECT_TRUE(json["worker"].contains("kept")) << json;
}

} // namespace
} // namespace sandbox::test
