defmodule Sandbox.ProtocolVersionTest do
  # The client refuses an engine that speaks another protocol version, over
  # both transports, with an error that says which versions met.
  use ExUnit.Case, async: false

  alias Sandbox.Client
  alias Sandbox.IsolatedCompiler

  setup do
    dir = Path.join(Application.fetch_env!(:sandbox_client_test, :scratch), "proto-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)

    on_exit(fn ->
      Application.delete_env(:sandbox_client, :socket)
      Application.delete_env(:sandbox_client, :bin)
    end)

    %{dir: dir}
  end

  test "the client's major version is the protocol version it speaks" do
    [major | _] = Mix.Project.config()[:version] |> String.split(".")
    assert String.to_integer(major) == Client.protocol_version()
  end

  test "the real engine speaks this client's protocol" do
    Sandbox.Test.Engine.use_transport(:socket)
    assert {:ok, %{"ok" => true, "protocol_version" => version}} = Client.request(%{"op" => "ping"})
    assert version == Client.protocol_version()
  end

  test "socket: an engine with another protocol version is refused before the request", %{dir: dir} do
    path = Path.join(dir, "fake.sock")
    parent = self()
    fake_engine(path, %{"ok" => true, "version" => "9.0.0", "protocol_version" => 99, "pid" => 1}, parent)
    Application.put_env(:sandbox_client, :socket, path)

    assert {:error, {:protocol_mismatch, %{client: 1, engine: 99, message: message}}} =
             IsolatedCompiler.compile_sandbox(dir)

    assert message =~ "speaks protocol 99"
    assert message =~ path
    # Only the ping reached the engine.
    assert_receive {:fake_engine_got, ping}
    assert ping =~ "ping"
    refute_receive {:fake_engine_got, _}, 200
  end

  test "socket: an engine that reports no protocol version is refused", %{dir: dir} do
    path = Path.join(dir, "old.sock")
    fake_engine(path, %{"ok" => true, "version" => "0.0.1", "pid" => 1}, self())
    Application.put_env(:sandbox_client, :socket, path)

    assert {:error, {:protocol_mismatch, %{engine: nil, message: message}}} = Client.request(%{"op" => "scan"})
    assert message =~ "reports no protocol version"
  end

  test "port: a sandbox command with another protocol version is refused", %{dir: dir} do
    bin = Path.join(dir, "sandbox")

    File.write!(bin, """
    #!/bin/sh
    read line
    echo '{"ok":true,"version":"9.0.0","protocol_version":2,"pid":1}'
    """)

    File.chmod!(bin, 0o755)
    Application.delete_env(:sandbox_client, :socket)
    Application.put_env(:sandbox_client, :bin, bin)

    assert {:error, {:protocol_mismatch, %{client: 1, engine: 2, message: message}}} = Client.request(%{"op" => "scan"})
    assert message =~ "speaks protocol 2"
  end

  # A one-connection engine on `path` that answers every line with `answer`
  # and tells `parent` what it got.
  defp fake_engine(path, answer, parent) do
    {:ok, listener} =
      :gen_tcp.listen(0, [:binary, {:ifaddr, {:local, String.to_charlist(path)}}, active: false, packet: :line])

    spawn_link(fn ->
      {:ok, socket} = :gen_tcp.accept(listener)
      serve(socket, answer, parent)
    end)
  end

  defp serve(socket, answer, parent) do
    case :gen_tcp.recv(socket, 0) do
      {:ok, line} ->
        send(parent, {:fake_engine_got, line})
        :gen_tcp.send(socket, Sandbox.Client.JSON.encode!(answer) <> "\n")
        serve(socket, answer, parent)

      {:error, _} ->
        :ok
    end
  end
end
