# A callback named like a dangerous function, with no restricted module in
# play: only the usual low warning.
defmodule A do
  def stop(server), do: server.stop()
  def run(mod, args), do: apply(mod, :halt, args)
end
