defmodule A do
  import System, only: [cmd: 2]
  def f, do: cmd("ls", [])
end
