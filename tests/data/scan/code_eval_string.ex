defmodule A do
  def f(s), do: Code.eval_string(s)
end
