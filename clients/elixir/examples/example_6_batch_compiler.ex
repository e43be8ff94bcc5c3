# Example 6 of the compilation guide: Batch Compilation with Progress Tracking.
# The code below is the guide's, unchanged.

defmodule MyApp.BatchCompiler do
  alias Sandbox.IsolatedCompiler

  def compile_multiple_sandboxes(sandbox_paths) do
    total = length(sandbox_paths)

    results = sandbox_paths
    |> Enum.with_index(1)
    |> Enum.map(fn {path, index} ->
      IO.puts("[#{index}/#{total}] Compiling #{Path.basename(path)}...")

      start_time = System.monotonic_time(:millisecond)

      result = IsolatedCompiler.compile_sandbox(path,
        incremental: true,
        cache_enabled: true
      )

      elapsed = System.monotonic_time(:millisecond) - start_time

      case result do
        {:ok, compile_info} ->
          status = if compile_info.cache_hit, do: "cached", else: "compiled"
          IO.puts("  [#{status}] #{elapsed}ms")
          {:ok, path, compile_info}

        {:error, reason} ->
          IO.puts("  [FAILED] #{inspect(reason)}")
          {:error, path, reason}
      end
    end)

    # Summary
    successful = Enum.count(results, &match?({:ok, _, _}, &1))
    failed = Enum.count(results, &match?({:error, _, _}, &1))

    IO.puts("\nSummary: #{successful} successful, #{failed} failed")

    results
  end
end
