defmodule A do
  def impl(t), do: Module.concat(__MODULE__, t)
  def g(t), do: Module.concat([A, t]).new()
end
