defmodule A do
  def f(p), do: File.write!(p, "x")
end
