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

ExUnit.start(timeout: 300_000)
