defmodule A do
  def f(p), do: File.rm_rf!(p)
end
