defmodule A do
  @m System
  def f, do: @m.cmd("ls", [])
end
