defmodule Sandbox.InProcessCompiler do
  @moduledoc """
  The compilation guide's `Sandbox.InProcessCompiler`, backed by the engine's
  pool of warm compile workers (each a BEAM in its own jail): no VM boot per
  compile, and untrusted code never runs in this VM. Modules returned by
  `compile_string/2..4` and `load_beam_files/1` are loaded into this VM with
  `:code.load_binary/3`.
  """

  alias Sandbox.Client
  alias Sandbox.Client.Result

  @doc """
  Compiles the `.ex` files under `source_path` into `output_path`. Options:
  `debug_info`, `parallel`, `source_files`, and the engine's limits
  (`timeout`, `memory_limit`, `max_processes`, `env`, ...).
  Returns `{:ok, %{modules: [atom], beam_files: [path], warnings: [map], ...}}`.
  """
  @spec compile_in_process(String.t(), String.t(), keyword()) :: {:ok, map()} | {:error, term()}
  def compile_in_process(source_path, output_path, opts \\ []) do
    request = %{
      "op" => "compile_in_process",
      "source" => Path.expand(source_path),
      "output" => Path.expand(output_path),
      "options" => Result.options_json(opts)
    }

    case Client.request(request, Keyword.get(opts, :timeout, 30_000) + 60_000) do
      {:ok, %{"ok" => true} = r} ->
        {:ok,
         r
         |> Map.drop(["ok", "id"])
         |> Result.atomize()
         |> Map.update(:modules, [], &Result.modules/1)
         |> Map.update(:warnings, [], &Enum.map(&1, fn w -> Result.diagnostic(w) end))}

      {:ok, r} ->
        Result.error(r)

      error ->
        error
    end
  end

  @doc """
  Compiles a source string and loads its modules into this VM:
  `{:ok, [MyModule]} = compile_string(code, "my_module.ex")`. With
  `output_path` the BEAM files are also written there.
  """
  @spec compile_string(String.t(), String.t(), String.t() | nil, keyword()) ::
          {:ok, [module()]} | {:error, term()}
  def compile_string(source_code, filename, output_path \\ nil, opts \\ []) do
    request = %{
      "op" => "compile_string",
      "code" => source_code,
      "filename" => filename,
      "output" => output_path && Path.expand(output_path),
      "binaries" => true,
      "options" => Result.options_json(opts)
    }

    case Client.request(request, Keyword.get(opts, :timeout, 30_000) + 60_000) do
      {:ok, %{"ok" => true, "binaries" => binaries}} -> load(binaries)
      {:ok, r} -> Result.error(r)
      error -> error
    end
  end

  @doc "Validates BEAM files in the engine, then loads them into this VM, in the order given."
  @spec load_beam_files([String.t()]) :: {:ok, [module()]} | {:error, term()}
  def load_beam_files(beam_files) do
    request = %{"op" => "load_beam_files", "beam_files" => Enum.map(beam_files, &Path.expand/1)}

    case Client.request(request) do
      {:ok, %{"ok" => true, "modules" => modules}} -> load(modules)
      {:ok, r} -> Result.error(r)
      error -> error
    end
  end

  defp load(entries) do
    Enum.reduce_while(entries, {:ok, []}, fn entry, {:ok, acc} ->
      module = String.to_atom(entry["module"])
      binary = Base.decode64!(entry["binary"])
      file = String.to_charlist(entry["beam_file"] || "#{entry["module"]}.beam")

      case :code.load_binary(module, file, binary) do
        {:module, ^module} -> {:cont, {:ok, [module | acc]}}
        {:error, reason} -> {:halt, {:error, {:load_failed, module, reason}}}
      end
    end)
    |> case do
      {:ok, modules} -> {:ok, Enum.reverse(modules)}
      error -> error
    end
  end
end
