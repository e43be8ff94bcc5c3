# Example 3 of the compilation guide: In-Process Compilation for Fast Iteration.
# The code below is the guide's, unchanged.

defmodule MyApp.REPLCompiler do
  alias Sandbox.InProcessCompiler

  def compile_and_run(code_string) do
    # Compile the code in-process
    case InProcessCompiler.compile_string(code_string, "repl_input.ex") do
      {:ok, [module | _]} ->
        # The module is already loaded, execute it
        if function_exported?(module, :run, 0) do
          {:ok, module.run()}
        else
          {:ok, module}
        end

      {:error, reason} ->
        {:error, reason}
    end
  end

  def compile_file_fast(source_path, output_path) do
    # Use in-process compilation for speed
    case InProcessCompiler.compile_in_process(source_path, output_path,
      debug_info: true,
      parallel: true
    ) do
      {:ok, %{modules: modules, warnings: warnings}} ->
        unless Enum.empty?(warnings) do
          IO.puts("Warnings:")
          Enum.each(warnings, &IO.puts("  #{&1.message}"))
        end
        {:ok, modules}

      {:error, reason} ->
        {:error, reason}
    end
  end
end
