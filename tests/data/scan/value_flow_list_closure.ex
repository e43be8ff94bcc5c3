# The module is an element of a list that a closure receives.
defmodule A do
  def go do
    Enum.each([System], fn m -> m.cmd("id", []) end)
  end
end
