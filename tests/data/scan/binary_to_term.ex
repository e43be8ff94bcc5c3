defmodule A do
  def f(b), do: :erlang.binary_to_term(b, [:safe])
  def g(x), do: :erlang.phash2(x)
end
