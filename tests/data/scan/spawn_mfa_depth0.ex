defmodule A do
  def f, do: spawn(System, :cmd, ["id", []])
end
