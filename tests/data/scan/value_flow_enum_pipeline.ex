# An Enum pipeline carries the module to the call.
defmodule A do
  def go do
    [File, System]
    |> Enum.filter(&function_exported?(&1, :halt, 0))
    |> Enum.each(& &1.halt())
  end
end
