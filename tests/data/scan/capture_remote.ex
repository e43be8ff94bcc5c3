defmodule A do
  def f, do: &System.cmd/2
end
