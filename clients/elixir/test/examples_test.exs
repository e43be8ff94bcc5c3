defmodule Sandbox.ExamplesTest do
  # The guide's examples 1 to 7 (examples/), run against the real engine over
  # its socket, with their output checked.
  use ExUnit.Case, async: false
  import ExUnit.CaptureIO

  alias Sandbox.Test.Engine

  setup do
    Engine.use_transport(:socket)
    on_exit(fn -> Application.delete_env(:sandbox_client, :socket) end)
  end

  defp hello_project(name) do
    Engine.mix_project(name, "defmodule #{Macro.camelize(name)} do\n  def hello, do: :world\nend\n")
  end

  test "example 1: basic compilation" do
    path = hello_project("example_one")

    output =
      capture_io(fn ->
        assert {:ok, info} = MyApp.CodeCompiler.compile_user_code(path)
        assert length(info.beam_files) == 1
      end)

    assert output =~ ~r/Compiled successfully in \d+ms/
    assert output =~ "Generated 1 BEAM files"
  end

  @tag :in_process
  test "example 2: incremental compilation with hot reload" do
    path = hello_project("example_two")
    output = capture_io(fn -> assert :ok = MyApp.HotReloader.reload_changed_modules(path, "sandbox-1") end)
    assert output =~ "Reloaded module: Elixir.ExampleTwo"
    assert apply(ExampleTwo, :hello, []) == :world
  end

  @tag :in_process
  test "example 3: in-process compilation for fast iteration" do
    code = "defmodule ReplInput do\n  def run, do: 6 * 7\nend\n"
    assert {:ok, 42} = MyApp.REPLCompiler.compile_and_run(code)

    src = Engine.sandbox("example_three", %{"fast.ex" => "defmodule FastOne do\n  def f(x), do: x\nend\n"})
    assert {:ok, [FastOne]} = MyApp.REPLCompiler.compile_file_fast(src, Path.join(src, "out"))
  end

  test "example 4: secure compilation with security scanning" do
    path = hello_project("example_four")
    output = capture_io(fn -> send(self(), {:result, MyApp.SecureCompiler.compile_untrusted(path)}) end)
    assert_received {:result, result}

    # The clean project passes the scan and compiles under the example's limits.
    assert {:ok, info} = result
    assert info.modules == [ExampleFour]
    refute output =~ "Security threats detected"
  end

  test "example 4: a project that runs a command is stopped by the scan" do
    path = hello_project("example_four_evil")
    File.write!(Path.join(path, "lib/evil.ex"), "defmodule Evil do\n  def x, do: System.cmd(\"ls\", [])\nend\n")
    output = capture_io(fn -> send(self(), {:result, MyApp.SecureCompiler.compile_untrusted(path)}) end)
    assert_received {:result, {:error, {:security_threats, [threat | _]}}}
    assert threat.file == "lib/evil.ex"
    assert threat.line == 2
    assert output =~ "Security threats detected"
  end

  test "example 5: compilation with a custom environment" do
    path = hello_project("example_five")
    config = %{secret_key: "s3cret", database_url: "ecto://localhost/db", version: "1.2.3"}
    assert {:ok, prod} = MyApp.EnvironmentCompiler.compile_for_production(path, config)
    assert prod.compiler == :mix
    assert {:ok, dev} = MyApp.EnvironmentCompiler.compile_for_development(path)
    assert dev.compiler == :elixirc
    assert dev.modules == [ExampleFive]
  end

  test "example 6: batch compilation with progress tracking" do
    good = [hello_project("batch_one"), hello_project("batch_two")]
    bad = Engine.mix_project("batch_bad", "defmodule BatchBad do\n  def f, do: missing()\nend\n")
    paths = good ++ [bad]

    output =
      capture_io(fn ->
        results = MyApp.BatchCompiler.compile_multiple_sandboxes(paths)
        assert [{:ok, _, _}, {:ok, _, _}, {:error, ^bad, {:compilation_failed, _, _}}] = results
      end)

    assert output =~ "[1/3] Compiling #{Path.basename(hd(good))}..."
    assert output =~ ~r/  \[compiled\] \d+ms/
    assert output =~ "  [FAILED] {:compilation_failed"
    assert output =~ "Summary: 2 successful, 1 failed"
  end

  test "example 7: compilation cache management" do
    path = hello_project("example_seven")
    output = capture_io(fn -> assert :ok = MyApp.CacheManager.warm_up_cache(path) end)
    assert output =~ "Warming up cache for #{Path.basename(path)}..."
    assert output =~ ~r/Cache warmed up in \d+ms/

    # Statistics need the engine's compile cache; without it both calls
    # report the error the way the example prints it.
    stats = capture_io(fn -> MyApp.CacheManager.show_cache_stats(path) end)
    assert stats =~ "Cache Statistics for #{Path.basename(path)}" or stats =~ "Failed to get cache stats:"
    cleared = capture_io(fn -> MyApp.CacheManager.clear_all_caches([path]) end)
    assert cleared =~ "Cleared cache for" or cleared =~ "Failed to clear cache for"
  end
end
