defmodule Sandbox.ClientTest do
  use ExUnit.Case, async: false

  alias Sandbox.IsolatedCompiler
  alias Sandbox.InProcessCompiler
  alias Sandbox.Test.Engine

  @hello """
  defmodule Hello do
    def hello, do: :world
  end
  """

  for transport <- [:socket, :port] do
    describe "#{transport}:" do
      setup do
        Engine.use_transport(unquote(transport))
        on_exit(fn -> Application.delete_env(:sandbox_client, :socket) end)
      end

      test "compile_sandbox returns the guide's compile_info and cleanup removes its temp dir" do
        path = Engine.mix_project("hello", @hello)
        assert {:ok, info} = IsolatedCompiler.compile_sandbox(path, timeout: 60_000)
        assert [beam] = info.beam_files
        assert Path.basename(beam) == "Elixir.Hello.beam"
        assert info.modules == [Hello]
        assert is_integer(info.compilation_time)
        assert info.cache_hit == false
        assert info.compilation_strategy == :full
        assert info.compiler == :mix
        assert is_map(info.resource_usage) and is_map(info.isolation)
        assert :ok = IsolatedCompiler.validate_compilation(info)
        assert File.dir?(info.temp_dir)
        assert :ok = IsolatedCompiler.cleanup_temp_artifacts(info.temp_dir)
        refute File.exists?(info.temp_dir)
      end

      test "elixirc warnings are maps with file, line and message" do
        path =
          Engine.sandbox("warn", %{
            "lib/warn.ex" => "defmodule Warn do\n  def f(x) do\n    y = 1\n    x\n  end\nend\n"
          })

        assert {:ok, info} = IsolatedCompiler.compile_sandbox(path, compiler: :elixirc)
        assert [%{file: "lib/warn.ex", line: 3, message: message} | _] = info.warnings
        assert message =~ "y"
        IsolatedCompiler.cleanup_temp_artifacts(info.temp_dir)
      end

      test "a compile error is {:compilation_failed, exit_code, output}" do
        path = Engine.sandbox("broken", %{"lib/broken.ex" => "defmodule Broken do\n  def f, do: nope()\nend\n"})
        assert {:error, {:compilation_failed, code, output}} = IsolatedCompiler.compile_sandbox(path, compiler: :elixirc)
        assert code != 0
        assert output =~ "nope"

        report = IsolatedCompiler.compilation_report({:error, {:compilation_failed, code, output}})
        assert report.status == :failure
        assert report.summary == "Compilation failed: Exit code #{code}"
      end

      test "a module body that never ends is {:compilation_timeout, timeout}" do
        path = Engine.sandbox("loop", %{"lib/loop.ex" => "defmodule Loop do\n  Stream.repeatedly(fn -> 1 end) |> Stream.run()\nend\n"})
        assert {:error, {:compilation_timeout, 1500}} =
                 IsolatedCompiler.compile_sandbox(path, compiler: :elixirc, timeout: 1500)
      end

      test "bad paths and bad options are typed errors" do
        assert {:error, {:invalid_sandbox_path, _}} = IsolatedCompiler.compile_sandbox("/nonexistent/sandbox")
        path = Engine.sandbox("opts", %{"lib/a.ex" => "defmodule A, do: nil\n"})
        assert {:error, {:invalid_option, :timeout, _}} = IsolatedCompiler.compile_sandbox(path, timeout: -5)
        assert {:error, {:invalid_option, :no_such_option, _}} = IsolatedCompiler.compile_sandbox(path, no_such_option: 1)
      end

      test "code that runs only in the jail is reported; scan_scope: :all judges it" do
        path =
          Engine.sandbox("scoped", %{
            "lib/a.ex" => "defmodule A, do: nil\n",
            "build.exs" => "System.cmd(\"make\", [])\n"
          })

        assert {:ok, %{threats: [], warnings: [warning]}} = IsolatedCompiler.scan_code_security(path)
        assert warning.runs_in == :jail
        assert warning.operation == :system_command
        assert {:ok, %{threats: [threat]}} = IsolatedCompiler.scan_code_security(path, scan_scope: :all)
        assert threat.file == "build.exs"
        assert {:ok, _} = IsolatedCompiler.compile_sandbox(path, compiler: :elixirc)
        assert {:error, {:security_threats_detected, [_]}} =
                 IsolatedCompiler.compile_sandbox(path, compiler: :elixirc, scan_scope: :all)
        assert {:error, {:invalid_option, :scan_scope, _}} =
                 IsolatedCompiler.compile_sandbox(path, compiler: :elixirc, scan_scope: :everything)
      end

      test "a Hex dependency comes from package_mirror, checked against mix.lock" do
        scratch = Engine.sandbox("mirror", %{})
        {lock_line, _outer} = Engine.hex_package(Path.join(scratch, "tarballs"), "tiny_dep", "0.1.0",
          "defmodule TinyDep do\n  def answer, do: 42\nend\n")

        path =
          Engine.sandbox("with_dep", %{
            "mix.exs" => """
            defmodule WithDep.MixProject do
              use Mix.Project
              def project, do: [app: :with_dep, version: "0.1.0", deps: [{:tiny_dep, "~> 0.1"}]]
            end
            """,
            "lib/with_dep.ex" => "defmodule WithDep do\n  def run, do: TinyDep.answer()\nend\n",
            "mix.lock" => "%{\n  #{lock_line}\n}\n"
          })

        assert {:ok, info} = IsolatedCompiler.compile_sandbox(path, package_mirror: scratch, timeout: 60_000)
        assert [%{name: "tiny_dep", version: "0.1.0", source: "hex", ebin: ebin}] = info.dependencies
        assert File.exists?(Path.join(ebin, "Elixir.TinyDep.beam"))
        IsolatedCompiler.cleanup_temp_artifacts(info.temp_dir)

        File.rm!(Path.join(path, "mix.lock"))
        assert {:error, {:dependencies_unavailable, ["tiny_dep"], reason}} =
                 IsolatedCompiler.compile_sandbox(path, package_mirror: scratch)
        assert reason =~ "mix.lock"
        assert {:error, {:invalid_option, :package_mirror, _}} =
                 IsolatedCompiler.compile_sandbox(path, package_mirror: "ftp://example.com/repo")
      end

      test "the result names its toolchain; a missing one is an invalid option" do
        path = Engine.sandbox("toolchain", %{"lib/t.ex" => "defmodule T do\n  def t, do: 1\nend\n"})
        assert {:ok, info} = IsolatedCompiler.compile_sandbox(path, compiler: :elixirc)
        assert info.toolchain.elixir == System.version()
        assert info.toolchain.name == "system"
        IsolatedCompiler.cleanup_temp_artifacts(info.temp_dir)

        assert {:error, {:invalid_option, :toolchain, reason}} =
                 IsolatedCompiler.compile_sandbox(path, compiler: :elixirc, toolchain: "/nonexistent/elixir")
        assert reason =~ "does not exist"
        assert {:error, {:invalid_option, :toolchain, _}} =
                 IsolatedCompiler.compile_sandbox(path, compiler: :elixirc, toolchain: "no-such-name")
      end

      test "compile_file, validate_beam_files and compilation_report" do
        path = Engine.sandbox("single", %{"one.ex" => "defmodule One do\n  def one, do: 1\nend\n"})
        assert {:ok, info} = IsolatedCompiler.compile_file(Path.join(path, "one.ex"))
        assert info.modules == [One]
        assert :ok = IsolatedCompiler.validate_beam_files(info.beam_files)
        report = IsolatedCompiler.compilation_report({:ok, info})
        assert report.status == :success
        assert report.summary == "Compilation successful (#{info.compilation_time}ms)"
        assert report.metrics.beam_files_count == 1

        bad = Path.join(path, "Elixir.Bad.beam")
        File.write!(bad, "not a beam")
        assert {:error, {:beam_validation_failed, reason}} = IsolatedCompiler.validate_beam_files([bad])
        assert is_binary(reason)
        IsolatedCompiler.cleanup_temp_artifacts(info.temp_dir)
      end

      test "cleanup refuses a directory the engine did not create" do
        dir = Engine.sandbox("mine", %{"keep.txt" => "x"})
        assert {:error, _} = IsolatedCompiler.cleanup_temp_artifacts(dir)
        assert File.exists?(Path.join(dir, "keep.txt"))
      end

      @tag :in_process
      test "compile_string loads the module into this VM" do
        code = "defmodule ClientStringModule#{unquote(transport)} do\n  def hello, do: :world\nend\n"
        module = :"Elixir.ClientStringModule#{unquote(transport)}"
        assert {:ok, [^module]} = InProcessCompiler.compile_string(code, "my_module.ex")
        assert module.hello() == :world
      end

      @tag :in_process
      test "compile_in_process writes BEAMs and load_beam_files loads them" do
        name = "ClientInProc#{unquote(transport)}"
        src = Engine.sandbox("inproc", %{"a.ex" => "defmodule #{name} do\n  def v, do: 2\nend\n"})
        out = Path.join(src, "out")
        assert {:ok, %{modules: [module], warnings: []} = result} = InProcessCompiler.compile_in_process(src, out, debug_info: true, parallel: true)
        assert module == :"Elixir.#{name}"
        assert {:ok, [^module]} = InProcessCompiler.load_beam_files(result.beam_files)
        assert module.v() == 2
      end
    end
  end

  test "a path the caller may not use is {:permission_denied, path, operation}" do
    response = %{"ok" => false, "error" => %{"type" => "permission_denied", "path" => "/root/p", "operation" => "read"}}
    assert {:error, {:permission_denied, "/root/p", :read}} = Sandbox.Client.Result.compile_info(response)
  end
end
