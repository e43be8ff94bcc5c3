defmodule A do
  def f(x), do: :erlang.float_to_binary(x, [:compact, decimals: 10])
  def g(b), do: :erlang.split_binary(b, 2)
end
