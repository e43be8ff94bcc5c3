# Example 1 of the compilation guide: Basic Compilation.
# The code below is the guide's, unchanged.

defmodule MyApp.CodeCompiler do
  alias Sandbox.IsolatedCompiler

  def compile_user_code(source_path) do
    case IsolatedCompiler.compile_sandbox(source_path,
      timeout: 30_000,
      validate_beams: true
    ) do
      {:ok, compile_info} ->
        IO.puts("Compiled successfully in #{compile_info.compilation_time}ms")
        IO.puts("Generated #{length(compile_info.beam_files)} BEAM files")
        {:ok, compile_info}

      {:error, reason} ->
        IO.puts("Compilation failed: #{inspect(reason)}")
        {:error, reason}
    end
  end
end
