# Example 2 of the compilation guide: Incremental Compilation with Hot Reload.
# The code below is the guide's, unchanged.

defmodule MyApp.HotReloader do
  alias Sandbox.IsolatedCompiler
  alias Sandbox.InProcessCompiler

  def reload_changed_modules(sandbox_path, sandbox_id) do
    # Perform incremental compilation
    case IsolatedCompiler.incremental_compile(sandbox_path) do
      {:ok, %{cache_hit: true}} ->
        IO.puts("No changes detected")
        :ok

      {:ok, compile_info} ->
        IO.puts("Compiled #{length(compile_info.changed_files)} changed files")

        # Load the new BEAM files
        Enum.each(compile_info.beam_files, fn beam_file ->
          case InProcessCompiler.load_beam_files([beam_file]) do
            {:ok, [module]} ->
              IO.puts("Reloaded module: #{module}")

            {:error, reason} ->
              IO.puts("Failed to load #{beam_file}: #{inspect(reason)}")
          end
        end)

        :ok

      {:error, reason} ->
        {:error, reason}
    end
  end
end
