# The module is a default argument.
defmodule A do
  def run(args, runner \\ System), do: runner.cmd("sh", args)
end
