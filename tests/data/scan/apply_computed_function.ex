defmodule A do
  def f(fun), do: apply(System, fun, ["ls", []])
end
