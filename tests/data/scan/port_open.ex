defmodule A do
  def f, do: Port.open({:spawn, "sh"}, [:binary])
end
