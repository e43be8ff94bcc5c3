defmodule A do
  def f(m), do: Code.ensure_loaded?(m) and function_exported?(m, :x, 0)
  def g, do: Code.ensure_compiled(A)
end
