# A module computed at run time travels in a list to the call.
defmodule A do
  def go(names) do
    names
    |> Enum.map(&String.to_atom/1)
    |> Enum.each(fn m -> m.cmd("id", []) end)
  end
end
