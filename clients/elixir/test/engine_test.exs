defmodule Sandbox.EngineTest do
  use ExUnit.Case, async: false

  alias Sandbox.Test.Engine, as: Support

  setup do
    previous = Application.get_env(:sandbox_client, :socket)

    on_exit(fn ->
      if previous, do: Application.put_env(:sandbox_client, :socket, previous), else: Application.delete_env(:sandbox_client, :socket)
    end)
  end

  defp alive?(os_pid), do: match?({_, 0}, System.cmd("kill", ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true))

  test "the child spec starts sandbox serve, restarts it when it exits and stops it with the tree" do
    pid = start_supervised!({Sandbox.Engine, bin: Support.bin(), args: ["--jobs", "1", "--shutdown-grace", "1000"]})
    socket = Sandbox.Engine.socket()
    dir = Path.dirname(socket)
    assert Application.get_env(:sandbox_client, :socket) == socket
    assert Bitwise.band(File.stat!(dir).mode, 0o777) == 0o700
    assert {:ok, %{"ok" => true}} = Sandbox.Client.request(%{"op" => "ping"})

    path = Support.sandbox("engine_child_spec", %{"lib/hi.ex" => "defmodule EngineHi do\n  def hi, do: :hi\nend\n"})
    assert {:ok, info} = Sandbox.IsolatedCompiler.compile_sandbox(path, compiler: :elixirc, timeout: 60_000)
    assert info.modules == [EngineHi]
    Sandbox.IsolatedCompiler.cleanup_temp_artifacts(info.temp_dir)

    # Killed: the supervisor starts a new engine on a new socket.
    first = Sandbox.Engine.os_pid()
    ref = Process.monitor(pid)
    System.cmd("kill", ["-KILL", Integer.to_string(first)])
    assert_receive {:DOWN, ^ref, :process, ^pid, {:engine_exited, _}}, 10_000
    second = wait_for_restart(pid, 100)
    assert second != first
    refute alive?(first)
    assert {:ok, %{"ok" => true}} = Sandbox.Client.request(%{"op" => "ping"})
    new_socket = Sandbox.Engine.socket()
    refute File.exists?(dir)

    # Stopped with the tree: the engine and its directory are gone.
    :ok = stop_supervised(Sandbox.Engine)
    refute alive?(second)
    refute File.exists?(Path.dirname(new_socket))
    assert Application.get_env(:sandbox_client, :socket) == nil
  end

  defp wait_for_restart(_old, 0), do: flunk("Sandbox.Engine was not restarted")

  defp wait_for_restart(old, tries) do
    case Process.whereis(Sandbox.Engine) do
      pid when is_pid(pid) and pid != old -> Sandbox.Engine.os_pid()
      _ ->
        Process.sleep(100)
        wait_for_restart(old, tries - 1)
    end
  end
end
