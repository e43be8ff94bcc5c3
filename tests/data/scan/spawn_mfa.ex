# spawn/3 calls System.cmd in a new process: no call of System.cmd is written.
defmodule A do
  def f, do: spawn(System, :cmd, ["id", []])
end
