defmodule A do
  # System.cmd("rm", ["-rf", "/"])
  @doc "Never call :os.cmd/1 or System.cmd/2"
  def f, do: "System.cmd(\"ls\")"
end
