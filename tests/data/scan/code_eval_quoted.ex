defmodule A do
  def f(q), do: Code.eval_quoted(q)
end
