defmodule A do
  def f(mod, fun, args), do: apply(mod, fun, args)
  def g(m), do: m.validate(1)
end
