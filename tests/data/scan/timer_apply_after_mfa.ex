# :timer.apply_after/4 calls :os.cmd later, from the timer server.
defmodule A do
  def f, do: :timer.apply_after(1000, :os, :cmd, [~c"id"])
end
