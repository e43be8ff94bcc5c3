#include "scan/confinement.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace sandbox::scan {
namespace {

// What a fresh worker has, as :code.all_loaded/0 names it.
const std::set<std::string>& loaded()
{
  static const std::set<std::string> modules = {"Elixir.Enum", "Elixir.String", "Elixir.String.Chars.Integer",
                                                "Elixir.GenServer", "lists", "erlang", "Elixir.Kernel"};
  return modules;
}

ConfinementVerdict classify(std::vector<SourceFile> files) { return classify_confinement(files, loaded()); }

ConfinementVerdict classify_one(const std::string& path, const std::string& text)
{
  return classify({SourceFile{path, text}});
}

// Not confined, and the reason names `where` (file:line) and `call`.
void expect_not_confined(const ConfinementVerdict& verdict, const std::string& where, const std::string& call)
{
  EXPECT_FALSE(verdict.confined);
  EXPECT_TRUE(verdict.reason.starts_with(where + ":")) << verdict.reason;
  EXPECT_NE(verdict.reason.find(call), std::string::npos) << verdict.reason;
}

void expect_confined(const ConfinementVerdict& verdict)
{
  EXPECT_TRUE(verdict.confined) << verdict.reason;
  EXPECT_TRUE(verdict.reason.empty());
}

// --- confined ------------------------------------------------------------------

TEST(Confinement, PlainModuleIsConfinedAndNamesItsModules)
{
  auto verdict = classify_one("lib/a.ex", R"(defmodule A do
  def f(x), do: System.cmd("id", [x])
  defmodule Inner do
    def g, do: :ok
  end
end
)");
  expect_confined(verdict);
  EXPECT_EQ(verdict.modules, (std::vector<std::string>{"A", "A.Inner"}));
}

TEST(Confinement, AttributesComputedWithEnumAndStringAreConfined)
{
  expect_confined(classify_one("lib/a.ex", R"(defmodule A do
  @names ~w(a b c) |> Enum.map(&String.upcase/1)
  @count length(@names)
  @table Map.new(@names, fn n -> {n, String.length(n)} end)
  def names, do: @names
end
)"));
}

TEST(Confinement, MacroDefinedAndUsedInTheSubmissionIsConfined)
{
  expect_confined(classify({{"lib/m.ex", R"(defmodule M do
  defmacro twice(expr) do
    quote do
      unquote(expr) * 2
    end
  end
end
)"},
                            {"lib/a.ex", R"(defmodule A do
  require M
  @four M.twice(2)
  def f, do: M.twice(@four)
end
)"}}));
}

TEST(Confinement, UseOfItsOwnModuleWithUsingIsConfined)
{
  expect_confined(classify({{"lib/base.ex", R"(defmodule Base1 do
  defmacro __using__(opts) do
    name = Keyword.get(opts, :name, "none")
    quote do
      @before_compile Base1
      def name, do: unquote(name)
    end
  end

  defmacro __before_compile__(_env) do
    quote do
      def compiled?, do: true
    end
  end
end
)"},
                            {"lib/a.ex", R"(defmodule A do
  use Base1, name: "a"
end
)"}}));
}

TEST(Confinement, UseGenServerIsConfined)
{
  expect_confined(classify_one("lib/server.ex", R"(defmodule Server do
  use GenServer
  require Logger
  import Bitwise

  def start_link(arg), do: GenServer.start_link(__MODULE__, arg)
  @impl true
  def init(arg), do: {:ok, band(arg, 3)}
end
)"));
}

TEST(Confinement, ModuleBodyCallingAPrivateHelperThatOnlyUsesEnumIsConfined)
{
  expect_confined(classify_one("lib/a.ex", R"(defmodule Helpers do
  def squares(n), do: do_squares(n)
  defp do_squares(n), do: Enum.map(1..n, &(&1 * &1))
end

defmodule A do
  @squares Helpers.squares(4)
  for {value, index} <- Enum.with_index(@squares) do
    def square(unquote(index)), do: unquote(value)
  end
end
)"));
}

TEST(Confinement, ErlangFileWithOnlyFunctionsIsConfined)
{
  auto verdict = classify_one("src/a.erl", "-module(a).\n-export([f/0]).\nf() -> os:cmd(\"id\").\n");
  expect_confined(verdict);
  EXPECT_EQ(verdict.modules, (std::vector<std::string>{":a"}));
}

TEST(Confinement, ProtocolAndImplementationOfTheSubmissionAreConfined)
{
  expect_confined(classify_one("lib/p.ex", R"(defprotocol Size do
  def size(data)
end

defmodule Box do
  defstruct items: []
  defimpl Size do
    def size(box), do: length(box.items)
  end
  defimpl String.Chars do
    def to_string(box), do: inspect(box.items)
  end
end
)"));
}

TEST(Confinement, QuotedCodeBuiltByAHelperIsData)
{
  expect_confined(classify_one("lib/a.ex", R"(defmodule Spec do
  def type_to_spec(:any), do: quote(do: term())
  def type_to_spec(:int), do: quote(do: integer())
end

defmodule A do
  @type t :: unquote(Spec.type_to_spec(:any))
  @version System.version()
end
)"));
}

// --- not confined: one way each of leaving state behind ---------------------

TEST(Confinement, SpawningALinkedProcess)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  spawn_link(fn -> :ok end)\nend\n"),
                      "lib/a.ex:2", "Kernel.spawn_link/1");
}

TEST(Confinement, SpawningAnUnlinkedProcess)
{
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  @pid spawn(fn -> Process.sleep(:infinity) end)\nend\n"),
    "lib/a.ex:2", "Kernel.spawn/1");
}

TEST(Confinement, SendingAMessage)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  def f, do: :ok\n  send(self(), :hello)\nend\n"),
                      "lib/a.ex:3", "Kernel.send/2");
}

TEST(Confinement, CreatingAnEtsTable)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  :ets.new(:leak, [:named_table, :public])\nend\n"),
                      "lib/a.ex:2", ":ets.new/2");
}

TEST(Confinement, PuttingAPersistentTerm)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  @x :persistent_term.put(:k, 1)\nend\n"),
                      "lib/a.ex:2", ":persistent_term.put/2");
}

TEST(Confinement, PuttingTheApplicationEnvironment)
{
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  Application.put_env(:logger, :level, :none)\nend\n"),
    "lib/a.ex:2", "Application.put_env/3");
}

TEST(Confinement, SettingACompilerOption)
{
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  Code.put_compiler_option(:ignore_module_conflict, true)\nend\n"),
    "lib/a.ex:2", "Code.put_compiler_option/2");
}

TEST(Confinement, UnstickingAndRedefiningEnum)
{
  expect_not_confined(classify_one("lib/a.ex", ":code.unstick_mod(Enum)\ndefmodule B do\nend\n"), "lib/a.ex:1",
                      ":code.unstick_mod/1");
  expect_not_confined(classify_one("lib/enum.ex", "defmodule Enum do\n  def map(_, _), do: []\nend\n"),
                      "lib/enum.ex:1", "defines Enum");
}

TEST(Confinement, InstallingATracer)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  :erlang.trace(:all, true, [:call])\nend\n"),
                      "lib/a.ex:2", ":erlang.trace/3");
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  :dbg.tracer()\nend\n"), "lib/a.ex:2",
                      ":dbg.tracer/0");
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  :seq_trace.set_token(:label, 1)\nend\n"),
                      "lib/a.ex:2", ":seq_trace.set_token/2");
}

TEST(Confinement, AddingALoggerHandler)
{
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  :logger.add_handler(:h, :logger_std_h, %{})\nend\n"),
    "lib/a.ex:2", ":logger.add_handler/3");
}

TEST(Confinement, RegisteringAName)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  Process.register(self(), :compiler)\nend\n"),
                      "lib/a.ex:2", "Process.register/2");
}

TEST(Confinement, StringToAtomInALoop)
{
  expect_not_confined(classify_one("lib/a.ex", R"(defmodule A do
  for i <- 1..1_000_000 do
    String.to_atom("atom_#{i}")
  end
end
)"),
                      "lib/a.ex:3", "String.to_atom/1");
}

TEST(Confinement, MacroHidingACallBehindApplyOnAComputedModule)
{
  auto verdict = classify_one("lib/a.ex", R"(defmodule Hide do
  defmacro run(name) do
    module = Module.safe_concat([name])
    apply(module, :cmd, ["id", []])
  end
end
)");
  expect_not_confined(verdict, "lib/a.ex:4", "apply(module, :cmd");
  EXPECT_NE(verdict.reason.find("macro Hide.run"), std::string::npos) << verdict.reason;
}

TEST(Confinement, ModuleNamedLikeOneAlreadyLoaded)
{
  auto verdict = classify_one("lib/impl.ex", R"(defmodule Mine do
end

defimpl String.Chars, for: Integer do
  def to_string(_), do: "x"
end
)");
  expect_not_confined(verdict, "lib/impl.ex:4", "defines String.Chars.Integer");
}

TEST(Confinement, SystemCmdReachedTransitivelyThroughTwoHelpers)
{
  auto verdict = classify({{"lib/a.ex", R"(defmodule A do
  @version B.version()
  def version, do: @version
end
)"},
                           {"lib/b.ex", R"(defmodule B do
  def version, do: read()
  defp read, do: run("git")
  defp run(tool) do
    {out, 0} = System.cmd(tool, ["describe"])
    out
  end
end
)"}});
  expect_not_confined(verdict, "lib/b.ex:5", "System.cmd/2");
  EXPECT_NE(verdict.reason.find("lib/a.ex:2"), std::string::npos) << verdict.reason;
  EXPECT_NE(verdict.reason.find("B.version -> B.read -> B.run"), std::string::npos) << verdict.reason;
}

TEST(Confinement, UnknownExternalMacro)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  use SomeLib, opt: 1\nend\n"), "lib/a.ex:2",
                      "uses SomeLib");
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  field :name, :string\nend\n"), "lib/a.ex:2",
                      "calls field/2");
}

TEST(Confinement, ParseTransformInErlang)
{
  expect_not_confined(
    classify_one("src/a.erl", "-module(a).\n-compile([export_all, {parse_transform, lager_transform}]).\nf() -> ok.\n"),
    "src/a.erl:2", "parse transform");
}

TEST(Confinement, ErlangParseTransformThroughAMacroOrAHeader)
{
  expect_not_confined(classify({{"src/a.erl", "-module(a).\n-include(\"opts.hrl\").\n-compile(?OPTS).\n"},
                                {"include/opts.hrl", "-define(OPTS, [{parse_transform, pt}]).\n"}}),
                      "include/opts.hrl:1", "parse transform");
  expect_not_confined(classify_one("src/a.erl", "-module(a).\n-include_lib(\"eunit/include/eunit.hrl\").\n"),
                      "src/a.erl:2", "eunit/include/eunit.hrl");
  expect_not_confined(classify_one("src/a.erl", "-module(a).\n-on_load(init/0).\ninit() -> ok.\n"),
                      "src/a.erl:2", "-on_load");
  expect_confined(classify_one("src/a.erl", "-module(a).\n-include_lib(\"kernel/include/file.hrl\").\nf() -> ok.\n"));
}

TEST(Confinement, BeforeCompilePointingToAnExternalModule)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  @before_compile Other.Hooks\nend\n"),
                      "lib/a.ex:2", "Other.Hooks.__before_compile__");
}

TEST(Confinement, BeforeCompileOfTheSubmissionIsAnalysed)
{
  expect_not_confined(classify_one("lib/a.ex", R"(defmodule Hooks do
  def __after_compile__(_env, _bytecode), do: File.write!("/tmp/x", "y")
end

defmodule A do
  @after_compile Hooks
end
)"),
                      "lib/a.ex:2", "File.write!/2");
}

TEST(Confinement, OnDefinitionHookOfTheSubmissionIsAnalysed)
{
  expect_not_confined(classify_one("lib/a.ex", R"(defmodule Track do
  def __on_definition__(_env, _kind, name, _args, _guards, _body), do: :ets.insert(:defs, {name})
end

defmodule A do
  @on_definition Track
  def f, do: 1
end
)"),
                      "lib/a.ex:2", ":ets.insert/2");
}

TEST(Confinement, InterpolatedAtomAndDynamicCallsAreNotConfined)
{
  expect_not_confined(classify_one("lib/a.ex", "defmodule A do\n  @a :\"x#{1}\"\nend\n"), "lib/a.ex:2",
                      "builds an atom");
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  mod = Enum.at([System], 0)\n  mod.cmd(\"id\", [])\nend\n"),
    "lib/a.ex:3", "mod.cmd/2");
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  mod = Enum.at([System], 0)\n  f = &mod.cmd/2\n  f.(\"id\", [])\nend\n"),
    "lib/a.ex:3", "&mod.cmd/2");
}

TEST(Confinement, QuotedSpawnInAMacroIsNotConfined)
{
  expect_not_confined(classify_one("lib/a.ex", R"(defmodule M do
  defmacro start do
    quote do
      spawn(fn -> :ok end)
    end
  end
end
)"),
                      "lib/a.ex:4", "Kernel.spawn/1");
}

TEST(Confinement, UnquoteInATypespecRuns)
{
  expect_confined(classify_one("lib/a.ex", "defmodule A do\n  @type t :: Ecto.Schema.t() | term()\nend\n"));
  expect_not_confined(
    classify_one("lib/a.ex", "defmodule A do\n  @type t :: unquote(File.read!(\"/etc/passwd\"))\nend\n"),
    "lib/a.ex:2", "File.read!/1");
}

TEST(Confinement, OnLoadRunsTheNamedFunction)
{
  expect_not_confined(classify_one("lib/a.ex", R"(defmodule A do
  @on_load :init
  def init do
    :persistent_term.put(:a, 1)
    :ok
  end
end
)"),
                      "lib/a.ex:4", ":persistent_term.put/2");
}

TEST(Confinement, TableRowsAreExplicit)
{
  EXPECT_TRUE(confinement_allows(Permit::call, "Enum", "map"));
  EXPECT_FALSE(confinement_allows(Permit::call, "String", "to_atom"));
  EXPECT_TRUE(confinement_allows(Permit::call, "String", "to_existing_atom"));
  EXPECT_FALSE(confinement_allows(Permit::call, ":erlang", "binary_to_atom"));
  EXPECT_TRUE(confinement_allows(Permit::call, "Module", "put_attribute"));
  EXPECT_FALSE(confinement_allows(Permit::call, "Module", "eval_quoted"));
  EXPECT_FALSE(confinement_allows(Permit::call, "Code", "ensure_compiled"));
  EXPECT_TRUE(confinement_allows(Permit::use, "GenServer"));
  EXPECT_FALSE(confinement_allows(Permit::use, "ExUnit.Case"));
  EXPECT_TRUE(confinement_allows(Permit::require, "Logger"));
  EXPECT_EQ(normalize_module_name("Elixir.Enum"), "Enum");
  EXPECT_EQ(normalize_module_name("lists"), ":lists");
}

} // namespace
} // namespace sandbox::scan
