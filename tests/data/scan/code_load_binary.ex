defmodule A do
  def f(b), do: :code.load_binary(A, ~c"a", b)
end
