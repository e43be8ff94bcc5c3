defmodule Sandbox.Client do
  @moduledoc """
  How `Sandbox.IsolatedCompiler` and `Sandbox.InProcessCompiler` reach the
  engine.

  With a socket (application env `config :sandbox_client, socket: PATH`, else
  the `SANDBOX_SOCKET` variable) each call is one request to a running
  `sandbox serve` (docs/protocol.md in the engine's repository). Without one,
  each call runs the `sandbox` command as a port (`sandbox request`, the same
  dispatcher answering one request): the binary is `config :sandbox_client,
  bin: PATH`, else `SANDBOX_BIN`, else `sandbox` in PATH.
  """

  alias Sandbox.Client.JSON

  @type transport :: {:socket, String.t()} | {:port, String.t()}

  @doc "The transport the next call uses."
  @spec transport() :: transport() | {:error, term()}
  def transport do
    case setting(:socket, "SANDBOX_SOCKET") do
      nil ->
        bin = setting(:bin, "SANDBOX_BIN") || System.find_executable("sandbox")
        if bin, do: {:port, bin}, else: {:error, {:service_unavailable, "no SANDBOX_SOCKET and no sandbox command in PATH"}}

      socket ->
        {:socket, socket}
    end
  end

  defp setting(key, variable) do
    case Application.get_env(:sandbox_client, key) || System.get_env(variable) do
      "" -> nil
      value -> value
    end
  end

  @doc """
  Sends one request (a map with "op") and returns the decoded response (a map
  with string keys), or `{:error, reason}` when the engine cannot be reached.
  """
  @spec request(map(), timeout()) :: {:ok, map()} | {:error, term()}
  def request(request, timeout \\ :infinity) do
    line = JSON.encode!(request) <> "\n"

    case transport() do
      {:socket, path} -> over_socket(path, line, timeout)
      {:port, bin} -> over_port(bin, line, timeout)
      {:error, _} = error -> error
    end
  end

  defp over_socket(path, line, timeout) do
    case :gen_tcp.connect({:local, String.to_charlist(path)}, 0, [:binary, active: false, packet: :raw], 5_000) do
      {:ok, socket} ->
        try do
          with :ok <- :gen_tcp.send(socket, line),
               {:ok, reply} <- recv_line(socket, [], timeout) do
            decode(reply)
          else
            {:error, reason} -> {:error, {:service_unavailable, reason}}
          end
        after
          # Closing while a job runs cancels it on the service side.
          :gen_tcp.close(socket)
        end

      {:error, reason} ->
        {:error, {:service_unavailable, {path, reason}}}
    end
  end

  defp recv_line(socket, acc, timeout) do
    case :gen_tcp.recv(socket, 0, timeout) do
      {:ok, data} ->
        case :binary.split(data, "\n") do
          [head, _rest] -> {:ok, IO.iodata_to_binary(Enum.reverse([head | acc]))}
          [_] -> recv_line(socket, [data | acc], timeout)
        end

      {:error, _} = error ->
        error
    end
  end

  defp over_port(bin, line, timeout) do
    port =
      Port.open({:spawn_executable, bin}, [:binary, :exit_status, :use_stdio, :hide, args: ["request"]])

    Port.command(port, line)
    collect(port, [], timeout)
  rescue
    error in ErlangError -> {:error, {:service_unavailable, {bin, error.original}}}
  end

  defp collect(port, acc, timeout) do
    receive do
      {^port, {:data, data}} ->
        collect(port, [data | acc], timeout)

      {^port, {:exit_status, _status}} ->
        output = acc |> Enum.reverse() |> IO.iodata_to_binary()

        case output |> String.split("\n", trim: true) |> List.last() do
          nil -> {:error, {:service_unavailable, "sandbox request printed nothing"}}
          last -> decode(last)
        end
    after
      timeout ->
        with {:os_pid, pid} <- Port.info(port, :os_pid) do
          System.cmd("kill", ["-TERM", Integer.to_string(pid)], stderr_to_stdout: true)
        end

        Port.close(port)
        {:error, {:service_unavailable, :timeout}}
    end
  end

  defp decode(text) do
    case JSON.decode(text) do
      {:ok, %{} = map} -> {:ok, map}
      {:ok, _} -> {:error, {:protocol_error, "the response is not an object"}}
      {:error, reason} -> {:error, {:protocol_error, reason}}
    end
  end
end
