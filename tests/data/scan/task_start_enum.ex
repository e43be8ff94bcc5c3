defmodule A do
  def f, do: Task.start(Enum, :each, [[1, 2], &IO.inspect/1])
end
