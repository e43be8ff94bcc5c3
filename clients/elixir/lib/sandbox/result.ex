defmodule Sandbox.Client.Result do
  @moduledoc false
  # The engine's JSON (DESIGN.md and docs/protocol.md) as the guide's Elixir
  # values: maps with atom keys, modules as atoms, errors as the guide's tuples.

  @doc "Options (a keyword list) as the engine's option object."
  def options_json(opts) when is_list(opts) do
    Map.new(opts, fn {key, value} -> {Atom.to_string(key), option_value(key, value)} end)
  end

  defp option_value(:restricted_modules, modules) when is_list(modules),
    do: Enum.map(modules, &module_name/1)

  defp option_value(:allowed_operations, ops) when is_list(ops), do: Enum.map(ops, &to_string/1)
  defp option_value(:env, env) when is_map(env), do: Map.new(env, fn {k, v} -> {to_string(k), to_string(v)} end)
  defp option_value(:source_files, files) when is_list(files), do: Enum.map(files, &to_string/1)
  defp option_value(:temp_dir, dir) when is_binary(dir), do: Path.expand(dir)

  defp option_value(:package_mirror, mirror) when is_binary(mirror) do
    # A URL goes as it is (the engine refuses schemes other than http and https).
    if String.contains?(mirror, "://"), do: mirror, else: Path.expand(mirror)
  end

  # A prefix (it contains "/") is expanded; a word is a registered name.
  defp option_value(:toolchain, toolchain) when is_binary(toolchain) do
    if String.contains?(toolchain, "/"), do: Path.expand(toolchain), else: toolchain
  end

  defp option_value(:toolchain, toolchain) when is_atom(toolchain), do: Atom.to_string(toolchain)
  defp option_value(_key, value), do: value

  # :os -> ":os", System -> "System" (the engine's spelling of both).
  defp module_name(module) when is_atom(module), do: inspect(module)
  defp module_name(module), do: to_string(module)

  @doc "Keys of maps (recursively) as atoms."
  def atomize(%{} = map), do: Map.new(map, fn {k, v} -> {to_atom(k), atomize(v)} end)
  def atomize(list) when is_list(list), do: Enum.map(list, &atomize/1)
  def atomize(value), do: value

  defp to_atom(key) when is_binary(key), do: String.to_atom(key)
  defp to_atom(key), do: key

  @doc "A compile result response as {:ok, compile_info} or {:error, reason}."
  def compile_info(%{"ok" => true} = response) do
    info =
      response
      |> Map.drop(["ok", "id"])
      |> atomize()
      |> Map.update(:modules, [], &modules/1)
      |> Map.update(:compilation_strategy, :full, &String.to_atom/1)
      |> Map.update(:compiler, nil, &atom_or_nil/1)
      |> Map.update(:warnings, [], &Enum.map(&1, fn w -> diagnostic(w) end))

    {:ok, info}
  end

  def compile_info(response), do: error(response)

  def modules(names), do: Enum.map(names, &String.to_atom/1)

  def diagnostic(%{} = d), do: Map.update(d, :severity, :warning, &atom_or_nil/1)

  defp atom_or_nil(nil), do: nil
  defp atom_or_nil(value) when is_binary(value), do: String.to_atom(value)
  defp atom_or_nil(value), do: value

  @doc "An ok-or-error response as :ok or {:error, reason}."
  def ok(%{"ok" => true}), do: :ok
  def ok(response), do: error(response)

  @doc "A failure response as {:error, reason}, reason as the guide's tuples."
  def error(%{"error" => %{"type" => type} = e}), do: {:error, reason(type, e)}
  def error(other), do: {:error, {:protocol_error, other}}

  defp reason("compilation_failed", e), do: {:compilation_failed, e["exit_code"], e["output"] || ""}
  defp reason("compilation_timeout", e), do: {:compilation_timeout, e["timeout"]}

  defp reason("compiler_crash", e) do
    kind = atom_or_nil(e["kind"])

    case e["context"] do
      context when context in [nil, %{}] -> {:compiler_crash, kind, e["error"]}
      context -> {:compiler_crash, kind, e["error"], atomize(context)}
    end
  end

  defp reason("invalid_sandbox_path", e), do: {:invalid_sandbox_path, e["path"]}

  defp reason("beam_validation_failed", e) do
    {:beam_validation_failed, if(e["file"], do: "#{e["file"]}: #{e["reason"]}", else: e["reason"])}
  end

  defp reason("resource_limit_exceeded", e),
    do: {:resource_limit_exceeded, atom_or_nil(e["limit_type"]), atomize(e["details"] || %{})}

  defp reason("resource_monitor_failed", e), do: {:resource_monitor_failed, e["reason"]}
  defp reason("security_threats_detected", e), do: {:security_threats_detected, Enum.map(e["threats"] || [], &threat/1)}
  defp reason("security_scan_failed", e), do: {:security_scan_failed, e["reason"]}
  # The engine's own kinds (docs/usage.md) and the protocol's (docs/protocol.md).
  defp reason("jail_setup_failed", e), do: {:jail_setup_failed, e["stage"], e["reason"]}
  defp reason("dependencies_unavailable", e), do: {:dependencies_unavailable, e["dependencies"], e["reason"]}

  defp reason("dependency_verification_failed", e),
    do:
      {:dependency_verification_failed,
       %{dependency: e["dependency"], version: e["version"], reason: e["reason"],
         expected: e["expected"], actual: e["actual"]}}
  defp reason("invalid_option", e), do: {:invalid_option, atom_or_nil(e["option"]), e["reason"]}
  defp reason("output_limit_exceeded", e), do: {:output_limit_exceeded, e["limit"]}
  defp reason("no_bytecode_generated", e), do: {:no_bytecode_generated, e["reason"]}
  defp reason("permission_denied", e), do: {:permission_denied, e["path"], atom_or_nil(e["operation"])}
  defp reason("cancelled", e), do: {:cancelled, e["reason"]}
  defp reason("unsupported_operation", e), do: {:unsupported_operation, e["reason"]}
  defp reason(type, e), do: {String.to_atom(type), e |> Map.delete("type") |> atomize()}

  @doc "A threat or scan finding with atom values where the guide has atoms."
  def threat(%{} = t) do
    t
    |> atomize()
    |> Map.new(fn
      {key, value} when key in [:type, :severity, :operation, :runs_in] and is_binary(value) ->
        {key, String.to_atom(value)}

      pair -> pair
    end)
  end
end
