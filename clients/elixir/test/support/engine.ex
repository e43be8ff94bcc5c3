defmodule Sandbox.Test.Engine do
  @moduledoc false
  # Starts a real `sandbox serve` for the suite and switches the client
  # between the socket and the port transport.

  def bin do
    System.get_env("SANDBOX_BIN") || System.find_executable("sandbox") ||
      raise "set SANDBOX_BIN to the built sandbox command"
  end

  def start_service(dir) do
    socket = Path.join(dir, "sandbox.sock")
    args = ["serve", "--socket", socket, "--jobs", "2", "--queue", "8", "--shutdown-grace", "2000"]
    port = Port.open({:spawn_executable, bin()}, [:binary, :exit_status, :stderr_to_stdout, args: args])
    wait_for_socket(socket, 200)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    %{socket: socket, port: port, os_pid: os_pid}
  end

  def stop_service(%{port: port, os_pid: os_pid, socket: socket}) do
    System.cmd("kill", ["-TERM", Integer.to_string(os_pid)])

    receive do
      {^port, {:exit_status, status}} -> {status, File.exists?(socket)}
    after
      15_000 -> {:timeout, File.exists?(socket)}
    end
  end

  defp wait_for_socket(socket, 0), do: raise("sandbox serve did not create #{socket}")

  defp wait_for_socket(socket, tries) do
    case :gen_tcp.connect({:local, String.to_charlist(socket)}, 0, [:binary], 100) do
      {:ok, s} ->
        :gen_tcp.close(s)

      {:error, _} ->
        Process.sleep(50)
        wait_for_socket(socket, tries - 1)
    end
  end

  def use_transport(:socket) do
    Application.put_env(:sandbox_client, :socket, Application.fetch_env!(:sandbox_client_test, :socket))
  end

  def use_transport(:port) do
    Application.delete_env(:sandbox_client, :socket)
    Application.put_env(:sandbox_client, :bin, bin())
  end

  # A scratch sandbox with the given files.
  def sandbox(name, files) do
    root = Path.join([Application.fetch_env!(:sandbox_client_test, :scratch), "#{name}-#{System.unique_integer([:positive])}"])

    for {path, text} <- files do
      full = Path.join(root, path)
      File.mkdir_p!(Path.dirname(full))
      File.write!(full, text)
    end

    root
  end

  # A Hex package tarball (format 3) with one module, written to DIR/NAME-VERSION.tar;
  # returns its mix.lock line and outer checksum.
  def hex_package(dir, name, version, module_code) do
    File.mkdir_p!(dir)

    mix_exs = """
    defmodule #{Macro.camelize(name)}.MixProject do
      use Mix.Project
      def project, do: [app: :#{name}, version: "#{version}"]
    end
    """

    {:ok, contents} = tar([{~c"mix.exs", mix_exs}, {~c"lib/#{name}.ex", module_code}], [:compressed])

    metadata =
      ~s({<<"name">>,<<"#{name}">>}.\n{<<"version">>,<<"#{version}">>}.\n) <>
        ~s({<<"app">>,<<"#{name}">>}.\n{<<"build_tools">>,[<<"mix">>]}.\n)

    inner = Base.encode16(:crypto.hash(:sha256, "3" <> metadata <> contents))

    {:ok, tarball} =
      tar([{~c"VERSION", "3"}, {~c"CHECKSUM", inner}, {~c"metadata.config", metadata},
           {~c"contents.tar.gz", contents}], [])

    File.write!(Path.join(dir, "#{name}-#{version}.tar"), tarball)
    outer = Base.encode16(:crypto.hash(:sha256, tarball), case: :lower)

    line =
      ~s("#{name}": {:hex, :#{name}, "#{version}", "#{String.downcase(inner)}", [:mix], [], "hexpm", "#{outer}"},)

    {line, outer}
  end

  defp tar(entries, options) do
    path = Path.join(System.tmp_dir!(), "hex-#{System.unique_integer([:positive])}.tar")
    :ok = :erl_tar.create(String.to_charlist(path), Enum.map(entries, fn {n, d} -> {n, d} end), options)
    data = File.read!(path)
    File.rm!(path)
    {:ok, data}
  end

  def mix_project(name, module_code) do
    sandbox(name, %{
      "mix.exs" => """
      defmodule #{Macro.camelize(name)}.MixProject do
        use Mix.Project
        def project, do: [app: :#{name}, version: "0.1.0", elixir: "~> 1.14", deps: []]
      end
      """,
      "lib/#{name}.ex" => module_code
    })
  end
end
