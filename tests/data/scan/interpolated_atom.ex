defmodule A do
  def f(x), do: :"Elixir.#{x}".cmd("ls")
end
