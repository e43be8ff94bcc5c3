defmodule A do
  def f, do: Task.async(fn -> 1 end) |> Task.await()
end
