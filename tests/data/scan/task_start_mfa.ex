defmodule A do
  def f, do: Task.start(System, :cmd, ["id", []])
end
