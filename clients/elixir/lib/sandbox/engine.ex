defmodule Sandbox.Engine do
  @moduledoc """
  The engine under the host's supervision tree: `sandbox serve` as a port,
  its socket in a private temporary directory, restarted when it exits,
  stopped with the tree.

      children = [
        Sandbox.Engine,
        # ... the host's own children
      ]

  Once it answers, the client's calls (`Sandbox.IsolatedCompiler`,
  `Sandbox.InProcessCompiler`) go to it: it sets `config :sandbox_client,
  socket: ...` (unless `set_socket: false`).

  Options:

    * `:bin` - the `sandbox` command (default: `config :sandbox_client, bin:`,
      else `SANDBOX_BIN`, else `sandbox` in PATH)
    * `:args` - more `sandbox serve` flags, e.g. `["--jobs", "4", "--workers", "4"]`
    * `:set_socket` - point the client at this engine (default true)
    * `:name` - the process name (default `Sandbox.Engine`)
    * `:start_timeout` - milliseconds to wait for the socket (default 10 000)

  If the engine exits, this process exits with `{:engine_exited, status}` and
  its supervisor restarts it with a new engine. When the tree stops it, the
  engine gets SIGTERM (running jobs finish within its shutdown grace), and the
  temporary directory is removed.
  """

  use GenServer
  require Logger

  @doc "The socket path of the running engine."
  @spec socket(GenServer.server()) :: String.t()
  def socket(server \\ __MODULE__), do: GenServer.call(server, :socket)

  @doc "The engine's operating-system pid."
  @spec os_pid(GenServer.server()) :: pos_integer()
  def os_pid(server \\ __MODULE__), do: GenServer.call(server, :os_pid)

  def child_spec(options) do
    %{
      id: Keyword.get(options, :name, __MODULE__),
      start: {__MODULE__, :start_link, [options]},
      restart: :permanent,
      # Time for the engine to stop: its shutdown grace (10 s by default) and more.
      shutdown: 15_000,
      type: :worker
    }
  end

  def start_link(options \\ []) do
    GenServer.start_link(__MODULE__, options, name: Keyword.get(options, :name, __MODULE__))
  end

  @impl true
  def init(options) do
    Process.flag(:trap_exit, true)
    bin = Keyword.get(options, :bin) || Application.get_env(:sandbox_client, :bin) ||
            System.get_env("SANDBOX_BIN") || System.find_executable("sandbox")

    if is_nil(bin), do: raise(ArgumentError, "Sandbox.Engine: no sandbox command (set :bin or SANDBOX_BIN)")
    dir = private_dir()
    socket = Path.join(dir, "engine.sock")
    args = ["serve", "--socket", socket | Keyword.get(options, :args, [])]
    port = Port.open({:spawn_executable, bin}, [:binary, :exit_status, :stderr_to_stdout, args: args])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    state = %{port: port, os_pid: os_pid, dir: dir, socket: socket, set_socket: Keyword.get(options, :set_socket, true)}

    case wait_for_socket(port, socket, Keyword.get(options, :start_timeout, 10_000)) do
      :ok ->
        if state.set_socket, do: Application.put_env(:sandbox_client, :socket, socket)
        {:ok, state}

      {:error, reason} ->
        stop_engine(state)
        {:stop, reason}
    end
  end

  @impl true
  def handle_call(:socket, _from, state), do: {:reply, state.socket, state}
  def handle_call(:os_pid, _from, state), do: {:reply, state.os_pid, state}

  @impl true
  def handle_info({port, {:data, data}}, %{port: port} = state) do
    Logger.debug("sandbox serve: " <> String.trim_trailing(data))
    {:noreply, state}
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    Logger.warning("sandbox serve exited with status #{status}; restarting")
    {:stop, {:engine_exited, status}, %{state | port: nil}}
  end

  def handle_info({:EXIT, _from, reason}, state), do: {:stop, reason, state}
  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state), do: stop_engine(state)

  defp stop_engine(state) do
    if state.port do
      System.cmd("kill", ["-TERM", Integer.to_string(state.os_pid)], stderr_to_stdout: true)

      receive do
        {port, {:exit_status, _}} when port == state.port -> :ok
      after
        14_000 -> System.cmd("kill", ["-KILL", Integer.to_string(state.os_pid)], stderr_to_stdout: true)
      end
    end

    if state.set_socket and Application.get_env(:sandbox_client, :socket) == state.socket do
      Application.delete_env(:sandbox_client, :socket)
    end

    File.rm_rf(state.dir)
    :ok
  end

  defp private_dir do
    dir = Path.join(System.tmp_dir!(), "sandbox-engine-#{System.unique_integer([:positive])}-#{:rand.uniform(1_000_000_000)}")
    File.mkdir!(dir)
    File.chmod!(dir, 0o700)
    dir
  end

  defp wait_for_socket(port, socket, timeout) when timeout > 0 do
    case :gen_tcp.connect({:local, String.to_charlist(socket)}, 0, [:binary], 100) do
      {:ok, s} ->
        :gen_tcp.close(s)
        :ok

      {:error, _} ->
        receive do
          {^port, {:exit_status, status}} -> {:error, {:engine_exited, status}}
        after
          50 -> wait_for_socket(port, socket, timeout - 50)
        end
    end
  end

  defp wait_for_socket(_port, socket, _timeout), do: {:error, {:engine_did_not_start, socket}}
end
