defmodule A do
  alias System, as: S
  alias S, as: T
  alias T, as: U
  def f, do: U.cmd("ls", [])
end
