defmodule A do
  def f(x), do: Module.concat([x]).cmd("ls")
end
