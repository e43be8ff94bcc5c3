# The module spawn/3 is given travels in a list a closure receives.
defmodule A do
  def go do
    Enum.each([System], fn m -> spawn(m, :cmd, ["id", []]) end)
  end
end
