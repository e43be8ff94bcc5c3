defmodule A do
  def f(x), do: apply(String.to_atom(x), :cmd, ["ls", []])
end
