defmodule A do
  alias System, as: Shell
  def f, do: spawn(Shell, :cmd, ["id", []])
end
