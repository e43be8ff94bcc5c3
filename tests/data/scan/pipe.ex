defmodule A do
  def f, do: "ls" |> System.cmd([])
end
