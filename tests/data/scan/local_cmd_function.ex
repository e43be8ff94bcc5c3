defmodule A do
  def cmd(x), do: x
  def f, do: cmd(1)
end
