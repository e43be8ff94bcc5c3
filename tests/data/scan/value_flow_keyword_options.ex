# The module comes in keyword options, with a default.
defmodule A do
  def go(args, opts \\ []) do
    runner = Keyword.get(opts, :runner, :os)
    runner.cmd(args)
  end

  def start, do: go(~c"id", runner: :os)
end
