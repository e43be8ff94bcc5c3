# Example 7 of the compilation guide: Compilation Cache Management.
# The code below is the guide's, unchanged.

defmodule MyApp.CacheManager do
  alias Sandbox.IsolatedCompiler

  def show_cache_stats(sandbox_path) do
    case IsolatedCompiler.get_cache_statistics(sandbox_path) do
      {:ok, stats} ->
        IO.puts("Cache Statistics for #{Path.basename(sandbox_path)}")
        IO.puts("=" |> String.duplicate(50))
        IO.puts("Total compilations:      #{stats.total_compilations}")
        IO.puts("Incremental compilations: #{stats.incremental_compilations}")
        IO.puts("Cache hits:              #{stats.cache_hits}")
        IO.puts("Cache hit rate:          #{Float.round(stats.cache_hit_rate * 100, 1)}%")
        IO.puts("Incremental rate:        #{Float.round(stats.incremental_rate * 100, 1)}%")
        IO.puts("Average compile time:    #{stats.average_compilation_time}ms")

      {:error, reason} ->
        IO.puts("Failed to get cache stats: #{inspect(reason)}")
    end
  end

  def clear_all_caches(sandbox_paths) do
    Enum.each(sandbox_paths, fn path ->
      case IsolatedCompiler.clear_compilation_cache(path) do
        :ok ->
          IO.puts("Cleared cache for #{Path.basename(path)}")

        {:error, reason} ->
          IO.puts("Failed to clear cache for #{Path.basename(path)}: #{inspect(reason)}")
      end
    end)
  end

  def warm_up_cache(sandbox_path) do
    IO.puts("Warming up cache for #{Path.basename(sandbox_path)}...")

    # Force a full compilation to populate cache
    case IsolatedCompiler.compile_sandbox(sandbox_path,
      cache_enabled: true,
      force_recompile: true
    ) do
      {:ok, compile_info} ->
        IO.puts("Cache warmed up in #{compile_info.compilation_time}ms")
        :ok

      {:error, reason} ->
        IO.puts("Cache warm-up failed: #{inspect(reason)}")
        {:error, reason}
    end
  end
end
