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

  The client speaks one version of the engine's protocol,
  `protocol_version/0`, which is also its own major version. Before a
  request it asks the engine (`ping`) which version the engine speaks: on
  every connection to a socket, once per binary for the port. An engine that
  speaks another version, or none (older than the version check), is answered
  `{:error, {:protocol_mismatch, %{client: c, engine: e, message: text}}}`
  and the request is not sent.
  """

  alias Sandbox.Client.JSON

  # Keep in step with mix.exs (the major version) and the engine's
  # kServiceProtocolVersion (src/service/protocol.h).
  @protocol_version 1

  @doc "The version of the engine's protocol this client speaks."
  @spec protocol_version() :: pos_integer()
  def protocol_version, do: @protocol_version

  @ping ~s({"op":"ping"}\n)

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
          with :ok <- :gen_tcp.send(socket, @ping),
               {:ok, pong} <- recv_line(socket, [], 30_000),
               :ok <- check_protocol(pong, path),
               :ok <- :gen_tcp.send(socket, line),
               {:ok, reply} <- recv_line(socket, [], timeout) do
            decode(reply)
          else
            {:answer, response} -> {:ok, response}
            {:error, {:protocol_mismatch, _}} = error -> error
            {:error, {:protocol_error, _}} = error -> error
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

  # :ok when the engine's ping says it speaks this client's protocol. An engine
  # that refuses the caller outright (caller_not_allowed) answers the ping with
  # that error, which is the answer to the request too.
  defp check_protocol(pong, where) do
    case decode(pong) do
      {:ok, %{"ok" => true} = answer} ->
        case answer["protocol_version"] do
          @protocol_version -> :ok
          engine -> {:error, {:protocol_mismatch, mismatch(engine, answer["version"], where)}}
        end

      {:ok, answer} ->
        {:answer, answer}

      {:error, _} = error ->
        error
    end
  end

  defp mismatch(engine, engine_version, where) do
    client = "sandbox_client #{Application.spec(:sandbox_client, :vsn)} speaks protocol #{@protocol_version}"

    engine_text =
      case engine do
        nil -> "the engine at #{where} (#{engine_version || "unknown version"}) reports no protocol version"
        _ -> "the engine at #{where} (#{engine_version || "unknown version"}) speaks protocol #{inspect(engine)}"
      end

    %{
      client: @protocol_version,
      engine: engine,
      message: "#{engine_text}; #{client}: use the client whose major version is the engine's protocol version"
    }
  end

  defp over_port(bin, line, timeout) do
    key = {__MODULE__, :protocol_checked, bin}

    if :persistent_term.get(key, false) do
      run_port(bin, line, timeout)
    else
      with {:ok, pong} <- run_port(bin, @ping, 30_000),
           :ok <- check_protocol(JSON.encode!(pong), bin) do
        :persistent_term.put(key, true)
        run_port(bin, line, timeout)
      else
        {:answer, response} -> {:ok, response}
        error -> error
      end
    end
  end

  defp run_port(bin, line, timeout) do
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
