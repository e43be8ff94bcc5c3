defmodule A do
  def f(s), do: Code.compile_string(s)
end
