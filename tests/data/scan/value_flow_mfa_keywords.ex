# Module and function travel together in keyword options, called with apply.
defmodule A do
  def callback, do: [mod: :os, fun: :cmd, args: [~c"id"]]

  def run(opts), do: apply(opts[:mod], opts[:fun], opts[:args])
end
