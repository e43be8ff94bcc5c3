defmodule A do
  def f, do: System |> spawn(:cmd, ["id", []])
end
