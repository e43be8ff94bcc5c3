defmodule A do
  alias System, as: S
  alias S, as: T
  def f, do: T.cmd("ls", [])
end
