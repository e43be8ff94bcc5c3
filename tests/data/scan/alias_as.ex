defmodule A do
  alias System, as: S
  def f, do: S.cmd("ls", [])
end
