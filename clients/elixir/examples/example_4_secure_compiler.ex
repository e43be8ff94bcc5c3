# Example 4 of the compilation guide: Secure Compilation with Full Security Scanning.
# The code below is the guide's, unchanged.

defmodule MyApp.SecureCompiler do
  alias Sandbox.IsolatedCompiler

  @restricted_modules [
    :os, :file, :code, :erlang,
    System, File, Code, Port,
    :gen_tcp, :gen_udp, :ssl
  ]

  def compile_untrusted(source_path) do
    # First, scan for security issues
    case IsolatedCompiler.scan_code_security(source_path,
      restricted_modules: @restricted_modules,
      scan_depth: 5
    ) do
      {:ok, %{threats: []}} ->
        # No threats, proceed with compilation
        compile_with_limits(source_path)

      {:ok, %{threats: threats}} ->
        IO.puts("Security threats detected:")
        Enum.each(threats, fn threat ->
          IO.puts("  [#{threat.severity}] #{threat.file}:#{threat.line}")
          IO.puts("    #{threat.message}")
        end)
        {:error, {:security_threats, threats}}

      {:error, reason} ->
        {:error, {:security_scan_failed, reason}}
    end
  end

  defp compile_with_limits(source_path) do
    IsolatedCompiler.compile_sandbox(source_path,
      timeout: 10_000,                      # 10 second timeout
      memory_limit: 100 * 1024 * 1024,     # 100MB memory limit
      cpu_limit: 25.0,                      # 25% CPU limit
      max_processes: 20,                    # Max 20 processes
      security_scan: true,
      restricted_modules: @restricted_modules,
      validate_beams: true
    )
  end
end
