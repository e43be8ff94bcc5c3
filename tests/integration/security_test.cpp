// The security scanner through the real build/sandbox: `sandbox scan`, the
// scan before a compile, and the audit of the BEAMs a compile produced, on
// real libraries (no threat) and on hostile code (rejected, nothing left).

#include "support.h"

#include <fstream>
#include <set>

namespace sandbox::test {

namespace {

using SecurityScan = SandboxTest;

std::vector<std::string> operations_of(const nlohmann::json& findings)
{
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f["operation"].get<std::string>());
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item)
{
  return std::find(list.begin(), list.end(), item) != list.end();
}

TEST_F(SecurityScan, RealLibrariesAndExamplesHaveNoThreatWithTheDefaults)
{
  SKIP_WITHOUT_CORPORA();
  std::vector<fs::path> trees = {copy_corpus("decimal"), copy_corpus("mime"), copy_corpus("nimble_options")};
  for (const char* example : {"hello_mix", "plain_lib", "erlang", "compile_error"}) {
    trees.push_back(copy_example(example));
  }
  for (const auto& tree : trees) {
    auto run = sandbox({"scan", tree.string(), "--json"});
    EXPECT_EQ(run.exit_code, 0) << tree << "\n" << run.describe();
    auto result = run.json();
    EXPECT_EQ(result["ok"], true) << result.dump(2);
    EXPECT_TRUE(result["threats"].empty()) << tree << ": " << result["threats"].dump(2);
    EXPECT_GT(result["files_scanned"].get<int>(), 0);
  }
}

TEST_F(SecurityScan, CorporaCompileWithTheScanOnAndReportItsWarnings)
{
  SKIP_WITHOUT_CORPORA();
  for (const char* name : {"decimal", "mime", "nimble_options"}) {
    auto run = compile(copy_corpus(name), {"--compiler", "mix"});
    ASSERT_EQ(run.exit_code, 0) << name << "\n" << run.describe();
    auto result = run.json();
    ASSERT_TRUE(result["security_warnings"].is_array()) << result.dump(2);
    for (const auto& item : result["unenforced_options"]) {
      EXPECT_NE(item["option"], "security_scan") << "the scan ran, so it is enforced";
    }
  }
}

TEST_F(SecurityScan, AThreatInTheSourcesStopsTheCompileBeforeItRuns)
{
  auto path = make_sandbox("hostile", {{"lib/a.ex", "defmodule A do\n  alias System, as: S\n"
                                                    "  @x S.cmd(\"touch\", [\"/tmp/pwned\"])\nend\n"}});
  auto run = compile(path, {"--compiler", "elixirc"});
  ASSERT_TRUE(is_error(run, "security_threats_detected")) << run.describe();
  auto threats = run.json()["error"]["threats"];
  ASSERT_EQ(threats.size(), 1u) << threats.dump(2);
  EXPECT_EQ(threats[0]["operation"], "system_command");
  EXPECT_EQ(threats[0]["file"], "lib/a.ex");
  EXPECT_EQ(threats[0]["line"], 3);
  EXPECT_EQ(threats[0]["context"]["line_number"], 3);
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

// The scan result is kept in the engine's state directory between commands:
// it never hides a change, and what is planted or damaged there is ignored.
TEST_F(SecurityScan, TheKeptScanNeverHidesAChangeAndDamageIsIgnored)
{
  const std::string clean = "defmodule A do\n  def f, do: 1\nend\n";
  const std::string hostile = "defmodule A do\n  def f, do: System.cmd(\"ls\", [])\nend\n";
  auto path = make_sandbox("kept", {{"lib/a.ex", clean}});
  ASSERT_EQ(compile(path, {"--compiler", "elixirc"}).exit_code, 0);
  auto kept = entries_with_prefix(state_dir() / "scan-cache", "");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(fs::status(kept[0]).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  auto clean_entry = read_text(kept[0]);

  std::ofstream(path / "lib" / "a.ex") << hostile;
  EXPECT_TRUE(is_error(compile(path, {"--compiler", "elixirc"}), "security_threats_detected"));
  // The entry of the clean tree put back: the tree differs, so it is not used.
  std::ofstream(kept[0], std::ios::trunc) << clean_entry;
  EXPECT_TRUE(is_error(compile(path, {"--compiler", "elixirc"}), "security_threats_detected"));
  // A forged entry (the clean result with its signature broken) and garbage.
  auto forged = clean_entry;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  std::ofstream(kept[0], std::ios::trunc) << forged;
  EXPECT_TRUE(is_error(compile(path, {"--compiler", "elixirc"}), "security_threats_detected"));
  std::ofstream(kept[0], std::ios::trunc) << "not a scan";
  std::ofstream(path / "lib" / "a.ex") << clean;
  EXPECT_EQ(compile(path, {"--compiler", "elixirc"}).exit_code, 0);
}

TEST_F(SecurityScan, OptionsTakeEffect)
{
  auto path = make_sandbox("opts", {{"lib/a.ex", "defmodule A do\n  def f, do: System.cmd(\"ls\", [])\nend\n"}});
  EXPECT_TRUE(is_error(compile(path, {"--compiler", "elixirc"}), "security_threats_detected"));
  EXPECT_EQ(compile(path, {"--compiler", "elixirc", "--no-security-scan"}).exit_code, 0);
  EXPECT_EQ(compile(path, {"--compiler", "elixirc", "--allowed-operation", "system_command"}).exit_code, 0);
  EXPECT_EQ(compile(path, {"--compiler", "elixirc", "--restricted-module", ":os"}).exit_code, 0);
  EXPECT_TRUE(is_error(compile(path, {"--compiler", "elixirc", "--restricted-module", "System"}),
                       "security_threats_detected"));
}

// A macro assembles :os.cmd from atoms it is given; the source of the caller
// only passes :os and :cmd as data, so only the bytecode shows the call.
TEST_F(SecurityScan, AMacroGeneratedCallIsCaughtByTheBytecodeAudit)
{
  auto path = make_sandbox("macro", {
    {"lib/gen.ex", "defmodule Gen do\n  defmacro sh(m, f) do\n    quote do: unquote(m).unquote(f)('true')\n  end\nend\n"},
    {"lib/user.ex", "defmodule User do\n  require Gen\n  def run, do: Gen.sh(:os, :cmd)\nend\n"},
  });
  auto scan = sandbox({"scan", path.string(), "--json"});
  ASSERT_EQ(scan.exit_code, 0) << "the source scan cannot see it: " << scan.describe();
  for (const char* compiler : {"elixirc", "mix"}) {
    if (std::string(compiler) == "mix") {
      std::ofstream(path / "mix.exs") << "defmodule Macro.MixProject do\n  use Mix.Project\n"
                                         "  def project, do: [app: :macro_audit, version: \"0.1.0\"]\nend\n";
    }
    auto run = compile(path, {"--compiler", compiler});
    ASSERT_TRUE(is_error(run, "security_threats_detected")) << compiler << "\n" << run.describe();
    auto threats = run.json()["error"]["threats"];
    ASSERT_EQ(threats.size(), 1u) << threats.dump(2);
    EXPECT_EQ(threats[0]["type"], "dangerous_import");
    EXPECT_EQ(threats[0]["module"], ":os");
    EXPECT_EQ(threats[0]["function"], "cmd");
    EXPECT_EQ(threats[0]["arity"], 1);
    EXPECT_EQ(threats[0]["file"], "Elixir.User.beam");
    EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty()) << "outputs must be discarded";
  }
}

// A macro writes the module as a value into the caller: the caller's
// source passes two strings and calls cmd on a closure's argument, so only
// its BEAM holds System ('Elixir.System' in a literal, the call an apply
// instruction with no import).
TEST_F(SecurityScan, AModuleValueAMacroWroteIsCaughtByTheBytecodeAudit)
{
  auto path = make_sandbox("value_flow", {
    {"lib/gen.ex", "defmodule Gen do\n  defmacro runners(parts), do: [Module.concat([Enum.join(parts)])]\nend\n"},
    {"lib/user.ex", "defmodule User do\n  require Gen\n"
                    "  def run, do: Enum.each(Gen.runners([\"Sys\", \"tem\"]), fn m -> m.cmd(\"id\", []) end)\nend\n"},
    {"lib/fine.ex", "defmodule Fine do\n  @mods [System, File]\n"
                    "  def loaded, do: Enum.filter(@mods, &Code.ensure_loaded?/1)\n"
                    "  def call(mod, fun, args), do: apply(mod, fun, args)\nend\n"},
  });
  auto scan = sandbox({"scan", path.string(), "--json"});
  ASSERT_EQ(scan.exit_code, 0) << "the source scan cannot see it: " << scan.describe();
  auto run = compile(path, {"--compiler", "elixirc"});
  ASSERT_TRUE(is_error(run, "security_threats_detected")) << run.describe();
  auto threats = run.json()["error"]["threats"];
  ASSERT_EQ(threats.size(), 1u) << threats.dump(2);
  EXPECT_EQ(threats[0]["type"], "value_flow");
  EXPECT_EQ(threats[0]["operation"], "system_command");
  EXPECT_EQ(threats[0]["module"], "System");
  EXPECT_EQ(threats[0]["function"], "cmd");
  EXPECT_EQ(threats[0]["file"], "Elixir.User.beam");
  EXPECT_EQ(threats[0]["related"]["matched_text"], "Elixir.System");
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty()) << "outputs must be discarded";
  // Without the caller, the module that only uses System as a value compiles.
  fs::remove(path / "lib" / "user.ex");
  auto fine = compile(path, {"--compiler", "elixirc"});
  EXPECT_EQ(fine.exit_code, 0) << fine.describe();
}

TEST_F(SecurityScan, ABeamShippedInTheSandboxIsAudited)
{
  auto builder = make_sandbox("builder", {{"lib/evil.ex", "defmodule Evil do\n  def f, do: :os.cmd('id')\nend\n"}});
  auto built = compile(builder, {"--compiler", "elixirc", "--no-security-scan"});
  ASSERT_EQ(built.exit_code, 0) << built.describe();
  auto beams = beam_paths(built.json());
  ASSERT_EQ(beams.size(), 1u);
  auto path = make_sandbox("shipped", {{"lib/ok.ex", "defmodule Ok do\n  def f, do: Evil.f()\nend\n"}});
  fs::create_directories(path / "priv");
  fs::copy_file(beams[0], path / "priv" / "Elixir.Evil.beam");
  auto run = compile(path, {"--compiler", "elixirc"});
  ASSERT_TRUE(is_error(run, "security_threats_detected")) << run.describe();
  EXPECT_EQ(run.json()["error"]["threats"][0]["file"], "priv/Elixir.Evil.beam");
}

TEST_F(SecurityScan, ErlangSourcesAreScanned)
{
  auto path = make_sandbox("erl", {{"src/e.erl", "-module(e).\n-export([f/0]).\nf() -> 'os':cmd(\"id\").\n"}});
  auto run = compile(path, {"--compiler", "erlc"});
  ASSERT_TRUE(is_error(run, "security_threats_detected")) << run.describe();
}

TEST_F(SecurityScan, ScanCommandContract)
{
  auto path = make_sandbox("cli", {{"lib/a.ex", "defmodule A do\n  alias System, as: S\n  def f, do: S.cmd(\"x\", [])\n"
                                                "  def g, do: File.read!(\"README.md\")\nend\n"}});
  auto run = sandbox({"scan", path.string(), "--json"});
  EXPECT_EQ(run.exit_code, 1);
  auto result = run.json();
  EXPECT_EQ(result["ok"], false);
  EXPECT_EQ(result["error"]["type"], "security_threats_detected");
  EXPECT_TRUE(contains(operations_of(result["threats"]), "system_command"));
  EXPECT_TRUE(contains(operations_of(result["warnings"]), "file_read"));
  for (const char* key : {"type", "severity", "operation", "file", "line", "column", "message", "context"}) {
    EXPECT_TRUE(result["threats"][0].contains(key)) << key;
  }
  // scan depth 0 follows no alias: the call is only a warning.
  auto shallow = sandbox({"scan", path.string(), "--scan-depth", "0", "--json"});
  EXPECT_EQ(shallow.exit_code, 0) << shallow.describe();
  EXPECT_TRUE(contains(operations_of(shallow.json()["warnings"]), "dynamic_dispatch"));
  EXPECT_EQ(sandbox({"scan", path.string(), "--allowed-operation", "system_command"}).exit_code, 0);
  EXPECT_EQ(sandbox({"scan", path.string(), "--scan-depth", "x"}).exit_code, 2);
  EXPECT_EQ(sandbox({"scan", path.string(), "--allowed-operation", "nonsense"}).exit_code, 2);
  auto missing = sandbox({"scan", (path / "nope").string(), "--json"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.json()["error"]["type"], "invalid_sandbox_path");
  auto human = sandbox({"scan", path.string()});
  EXPECT_NE(human.out.find("lib/a.ex:3:"), std::string::npos) << human.out;
}

// --- where code runs decides what is a threat --------------------------------

// What widely used libraries carry beside their code: a mix.exs alias that
// runs a command, and a Mix task that loads a file and writes one.
const char* const kAliasDefinition = R"(
  defp aliases do
    ["docs.assets": &build_assets/1]
  end

  defp build_assets(_args) do
    {_, 0} = System.cmd("npm", ["run", "build"], cd: "assets")
  end
end
)";

const char* const kGenDocsTask = R"(defmodule Mix.Tasks.NimbleOptions.GenDocs do
  @shortdoc "Writes the docs of a schema to a Markdown file"
  @moduledoc "mix nimble_options.gen_docs SCHEMA_FILE OUT.md"
  use Mix.Task

  @impl true
  def run([schema_file, out]) do
    Mix.Task.run("compile")
    [{module, _} | _] = Code.require_file(schema_file)
    File.write!(out, NimbleOptions.docs(module.schema()))
    Mix.shell().info("wrote #{out}")
  end
end
)";

class SecurityScope : public SandboxTest {
protected:
  // A copy of a real library with both added, as its maintainers would.
  fs::path library_with_alias_and_task() const;
};

fs::path SecurityScope::library_with_alias_and_task() const
{
  auto path = copy_corpus("nimble_options");
  auto mix = read_text(path / "mix.exs");
  mix.replace(mix.find("      deps: "), 0, "      aliases: aliases(),\n");
  mix.replace(mix.rfind("end"), 3, kAliasDefinition);
  std::ofstream(path / "mix.exs", std::ios::trunc) << mix;
  fs::create_directories(path / "lib" / "mix" / "tasks");
  std::ofstream(path / "lib" / "mix" / "tasks" / "nimble_options.gen_docs.ex") << kGenDocsTask;
  return path;
}

TEST_F(SecurityScope, ALibraryWithACommandInAMixAliasAndAMixTaskCompilesByDefault)
{
  SKIP_WITHOUT_CORPORA();
  auto path = library_with_alias_and_task();
  auto scan = sandbox({"scan", path.string(), "--json"});
  ASSERT_EQ(scan.exit_code, 0) << scan.describe();
  std::set<std::pair<std::string, std::string>> reported; // (runs_in, operation)
  auto scanned = scan.json();
  for (const auto& w : scanned["warnings"]) reported.emplace(w["runs_in"].get<std::string>(), w["operation"].get<std::string>());
  EXPECT_TRUE(reported.contains({"jail", "system_command"})) << scan.out;
  EXPECT_TRUE(reported.contains({"mix", "code_evaluation"})) << scan.out;
  EXPECT_TRUE(reported.contains({"mix", "file_write"})) << scan.out;

  auto run = compile(path, {"--compiler", "mix"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  auto modules = result["modules"].get<std::vector<std::string>>();
  EXPECT_TRUE(contains(modules, "Elixir.Mix.Tasks.NimbleOptions.GenDocs") ||
              contains(modules, "Mix.Tasks.NimbleOptions.GenDocs"))
    << result["modules"];
  bool audited_task = false;
  for (const auto& w : result["security_warnings"]) {
    audited_task |= w["type"] == "dangerous_import" && w["runs_in"] == "mix";
  }
  EXPECT_TRUE(audited_task) << "the task's BEAM is audited and reported: " << result["security_warnings"].dump(2);

  // Every file judged: the alias and the task are threats, before anything runs.
  for (const char* command : {"compile", "incremental"}) {
    auto strict = sandbox({command, path.string(), "--compiler", "mix", "--scan-scope", "all", "--json"});
    ASSERT_TRUE(is_error(strict, "security_threats_detected")) << command << "\n" << strict.describe();
    std::set<std::string> files;
    auto error = strict.json()["error"];
    for (const auto& t : error["threats"]) files.insert(t["file"].get<std::string>());
    EXPECT_TRUE(files.contains("mix.exs")) << strict.out;
    EXPECT_TRUE(files.contains("lib/mix/tasks/nimble_options.gen_docs.ex")) << strict.out;
  }
  EXPECT_EQ(sandbox({"scan", path.string(), "--scan-scope", "all"}).exit_code, 1);
  EXPECT_EQ(sandbox({"scan", path.string(), "--scan-scope", "everything"}).exit_code, 2);
  EXPECT_EQ(sandbox({"compile", path.string(), "--scan-scope", "everything"}).exit_code, 2);
}

TEST_F(SecurityScope, CompileFileOfAMixTaskFollowsTheScope)
{
  auto path = make_sandbox("task_file", {{"gen.ex", "defmodule Mix.Tasks.Gen do\n"
                                                    "  def run(_), do: File.write!(\"out.txt\", \"x\")\nend\n"}});
  auto run = sandbox({"compile-file", (path / "gen.ex").string(), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto strict = sandbox({"compile-file", (path / "gen.ex").string(), "--scan-scope", "all", "--json"});
  ASSERT_TRUE(is_error(strict, "security_threats_detected")) << strict.describe();
}

// Host code must not reach a task's code, which was not judged as host code:
// not through a macro the source scan cannot follow (the bytecode names the
// task), and not as the application's callback module.
TEST_F(SecurityScope, HostCodeThatReachesAMixTaskIsRejected)
{
  const std::string task = "defmodule Mix.Tasks.Evil do\n  def run(_), do: System.cmd(\"id\", [])\n"
                           "  def start(_, _), do: {System.cmd(\"id\", []), self()}\nend\n";
  auto macro = make_sandbox("task_macro", {
    {"lib/mix/tasks/evil.ex", task},
    {"lib/gen.ex", "defmodule Gen do\n  defmacro call(m, f), do: quote(do: unquote(m).unquote(f)([]))\nend\n"},
    {"lib/user.ex", "defmodule User do\n  require Gen\n  def go, do: Gen.call(Mix.Tasks.Evil, :run)\nend\n"},
  });
  auto scan = sandbox({"scan", macro.string(), "--json"});
  ASSERT_EQ(scan.exit_code, 0) << "the source scan cannot see it: " << scan.describe();
  auto run = compile(macro, {"--compiler", "elixirc"});
  ASSERT_TRUE(is_error(run, "security_threats_detected")) << run.describe();
  auto threats = run.json()["error"]["threats"];
  ASSERT_EQ(threats.size(), 1u) << threats.dump(2);
  EXPECT_EQ(threats[0]["type"], "mix_task_reference");
  EXPECT_EQ(threats[0]["file"], "Elixir.User.beam");
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty()) << "outputs must be discarded";

  auto app = make_sandbox("task_app", {
    {"mix.exs", "defmodule TaskApp.MixProject do\n  use Mix.Project\n"
                "  def project, do: [app: :task_app, version: \"0.1.0\"]\n"
                "  def application, do: [mod: {Mix.Tasks.Evil, []}]\nend\n"},
    {"lib/mix/tasks/evil.ex", task},
  });
  run = compile(app, {"--compiler", "mix"});
  ASSERT_TRUE(is_error(run, "security_threats_detected")) << run.describe();
  threats = run.json()["error"]["threats"];
  ASSERT_EQ(threats.size(), 1u) << threats.dump(2);
  EXPECT_EQ(threats[0]["type"], "mix_task_reference");
  EXPECT_EQ(threats[0]["file"], "task_app.app");
}

} // namespace

} // namespace sandbox::test
