defmodule Sandbox.IsolatedCompiler do
  @moduledoc """
  The compilation guide's `Sandbox.IsolatedCompiler`, backed by the Sandbox
  engine: every compile runs in the engine's jail (namespaces, seccomp, a
  per-job cgroup), never in this VM.

  Options are the guide's (`timeout`, `memory_limit`, `temp_dir`,
  `validate_beams`, `compiler`, `env`, `source_files`, `incremental`,
  `force_recompile`, `cache_enabled`, `skip_cache`, `dependency_analysis`,
  `cpu_limit`, `max_processes`, `security_scan`, `restricted_modules`,
  `allowed_operations`, `in_process`) plus the engine's `output_limit`,
  `isolation`, `scan_scope` (`:compiled`, the default: only code a host
  may load can be a threat; `:all`: every file is judged) and
  `package_mirror` (a directory laid out as a Hex repository, or the
  http(s) URL of one: where a Mix project's Hex dependencies come from) and
  `toolchain` (an Elixir installation prefix, or a name the engine's
  operator registered; the result's `toolchain` says which ran). The engine
  validates them; an unknown option or a bad value is
  `{:error, {:invalid_option, option, reason}}`.

  Results are the guide's `compile_info` maps (atom keys) and its error tuples;
  see `Sandbox.Client` for how the engine is reached.
  """

  alias Sandbox.Client
  alias Sandbox.Client.Result

  @type compile_error ::
          {:compilation_failed, non_neg_integer(), String.t()}
          | {:compilation_timeout, non_neg_integer()}
          | {:compiler_crash, atom(), any()}
          | {:compiler_crash, atom(), any(), map()}
          | {:invalid_sandbox_path, String.t()}
          | {:beam_validation_failed, String.t()}
          | {:resource_limit_exceeded, atom(), map()}
          | {:resource_monitor_failed, any()}
          | {:security_threats_detected, list()}
          | {:security_scan_failed, any()}
          | {atom(), any()}

  @doc "Compiles a sandbox directory (a Mix project by default)."
  @spec compile_sandbox(String.t(), keyword()) :: {:ok, map()} | {:error, compile_error()}
  def compile_sandbox(sandbox_path, opts \\ []) do
    %{"op" => "compile", "path" => Path.expand(sandbox_path), "options" => Result.options_json(opts)}
    |> call(opts, &Result.compile_info/1)
  end

  @doc """
  Incremental compilation: only what changed (and its dependents) when the
  engine can tell, else a full compile. `changed_files` skips change detection.
  """
  @spec incremental_compile(String.t(), [String.t()], keyword()) :: {:ok, map()} | {:error, compile_error()}
  def incremental_compile(sandbox_path, changed_files \\ [], opts \\ []) do
    %{
      "op" => "incremental",
      "path" => Path.expand(sandbox_path),
      "changed_files" => changed_files,
      "options" => Result.options_json(opts)
    }
    |> call(opts, &Result.compile_info/1)
  end

  @doc "Compiles one `.ex` (elixirc) or `.erl` (erlc) file."
  @spec compile_file(String.t(), keyword()) :: {:ok, map()} | {:error, compile_error()}
  def compile_file(file_path, opts \\ []) do
    %{"op" => "compile_file", "file" => Path.expand(file_path), "options" => Result.options_json(opts)}
    |> call(opts, &Result.compile_info/1)
  end

  @doc """
  Scans a sandbox's source for dangerous operations. Options:
  `restricted_modules`, `allowed_operations`, `scan_depth`, `scan_scope`.
  Each finding's `runs_in` says where its code runs (`:host`, `:jail`, `:mix`).
  """
  @spec scan_code_security(String.t(), keyword()) :: {:ok, map()} | {:error, term()}
  def scan_code_security(sandbox_path, opts \\ []) do
    {depth, opts} = Keyword.pop(opts, :scan_depth)

    %{"op" => "scan", "path" => Path.expand(sandbox_path), "options" => Result.options_json(opts)}
    |> maybe_put("scan_depth", depth)
    |> call(opts, fn
        %{"ok" => true} = r ->
          {:ok,
           %{
             threats: Enum.map(r["threats"] || [], &Result.threat/1),
             warnings: Enum.map(r["warnings"] || [], &Result.threat/1)
           }
           |> Map.merge(r |> Map.drop(["ok", "id", "threats", "warnings"]) |> Result.atomize())}

        r ->
          Result.error(r)
      end)
  end

  @doc "Validates the BEAM files of a compile result."
  @spec validate_compilation(map()) :: :ok | {:error, compile_error()}
  def validate_compilation(%{beam_files: beam_files}), do: validate_beam_files(beam_files)

  @doc "Validates BEAM files (container, chunk tables, module name against the file name)."
  @spec validate_beam_files([String.t()]) :: :ok | {:error, compile_error()}
  def validate_beam_files(beam_files) do
    %{"op" => "validate", "beam_files" => Enum.map(beam_files, &Path.expand/1)}
    |> call([], &Result.ok/1)
  end

  @doc "Removes a temp dir a compile returned; the engine refuses anything it did not create."
  @spec cleanup_temp_artifacts(String.t()) :: :ok | {:error, term()}
  def cleanup_temp_artifacts(temp_dir) do
    %{"op" => "cleanup", "temp_dir" => Path.expand(temp_dir)}
    |> call([], &Result.ok/1)
  end

  @doc "Compile cache statistics of a sandbox."
  @spec get_cache_statistics(String.t()) :: {:ok, map()} | {:error, term()}
  def get_cache_statistics(sandbox_path) do
    %{"op" => "cache_stats", "path" => Path.expand(sandbox_path)}
    |> call([], fn
        %{"ok" => true} = r -> {:ok, r |> Map.drop(["ok", "id"]) |> Result.atomize()}
        r -> Result.error(r)
      end)
  end

  @doc "Clears a sandbox's compile cache."
  @spec clear_compilation_cache(String.t()) :: :ok | {:error, term()}
  def clear_compilation_cache(sandbox_path) do
    %{"op" => "cache_clear", "path" => Path.expand(sandbox_path)}
    |> call([], &Result.ok/1)
  end

  @doc """
  The guide's report of a compile result: `%{status: :success | :failure,
  summary, details, metrics}`.
  """
  @spec compilation_report({:ok, map()} | {:error, term()}) :: map()
  def compilation_report({:ok, info}) do
    warnings = Map.get(info, :warnings, [])
    beams = Map.get(info, :beam_files, [])
    time = Map.get(info, :compilation_time, 0)

    details =
      ["#{length(beams)} BEAM file(s), #{length(warnings)} warning(s)" | Enum.map(warnings, &diagnostic_line/1)]
      |> Enum.join("\n")

    %{
      status: :success,
      summary: "Compilation successful (#{time}ms)",
      details: details,
      metrics: %{
        compilation_time: time,
        beam_files_count: length(beams),
        output_size: byte_size(Map.get(info, :output, "") || ""),
        warnings_count: length(warnings)
      }
    }
  end

  def compilation_report({:error, reason}) do
    {summary, details} = failure_text(reason)

    %{
      status: :failure,
      summary: summary,
      details: details,
      metrics: %{compilation_time: 0, beam_files_count: 0}
    }
  end

  defp failure_text({:compilation_failed, exit_code, output}),
    do: {"Compilation failed: Exit code #{exit_code}", output}

  defp failure_text({:compilation_timeout, timeout}),
    do: {"Compilation failed: timed out after #{timeout}ms", ""}

  defp failure_text({:resource_limit_exceeded, limit, details}),
    do: {"Compilation failed: #{limit} exceeded", "current #{details[:current]} > limit #{details[:limit]}"}

  defp failure_text({:security_threats_detected, threats}) do
    {"Compilation failed: #{length(threats)} security threat(s) detected",
     Enum.map_join(threats, "\n", fn t -> "#{t[:file]}:#{t[:line]} [#{t[:severity]}] #{t[:message]}" end)}
  end

  defp failure_text(reason) when is_tuple(reason),
    do: {"Compilation failed: #{elem(reason, 0)}", inspect(reason)}

  defp failure_text(reason), do: {"Compilation failed", inspect(reason)}

  defp diagnostic_line(w) do
    where = Enum.join(Enum.reject([w[:file], w[:line], w[:column]], &is_nil/1), ":")
    "#{where}: #{w[:severity] || :warning}: #{w[:message]}"
  end

  defp maybe_put(map, _key, nil), do: map
  defp maybe_put(map, key, value), do: Map.put(map, key, value)

  # The engine enforces the compile's own timeout; the call waits a minute
  # beyond it before giving up on the engine.
  defp call(request, opts, handle) do
    case Client.request(request, Keyword.get(opts, :timeout, 30_000) + 60_000) do
      {:ok, response} -> handle.(response)
      {:error, _} = error -> error
    end
  end
end
