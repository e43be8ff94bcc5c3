# The suite runs against the real engine: SANDBOX_BIN is the built `sandbox`
# command (ctest sets it). One `sandbox serve` is started for the suite; each
# client test runs once over its socket and once with the command as a port.
scratch = Path.join(System.tmp_dir!(), "sandbox-client-test-#{System.unique_integer([:positive])}")
File.mkdir_p!(scratch)
service = Sandbox.Test.Engine.start_service(scratch)
Application.put_env(:sandbox_client_test, :socket, service.socket)
Application.put_env(:sandbox_client_test, :scratch, scratch)
Application.put_env(:sandbox_client_test, :service, service)
System.delete_env("SANDBOX_SOCKET")

ExUnit.after_suite(fn _ ->
  Sandbox.Test.Engine.stop_service(service)
  File.rm_rf!(scratch)
end)

# Tests tagged :in_process need the engine's warm worker pool
# (compile_string, compile_in_process, load_beam_files). Builds without it
# answer those calls with {:error, {:invalid_option, :compiler, "...not
# available in this build"}}; run them with `mix test --include in_process`.
ExUnit.start(exclude: [in_process: true], timeout: 300_000)
