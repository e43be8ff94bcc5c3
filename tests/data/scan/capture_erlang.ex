defmodule A do
  def f, do: &:os.cmd/1
end
