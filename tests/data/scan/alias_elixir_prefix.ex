defmodule A do
  alias Elixir.System
  def f, do: System.cmd("ls", [])
end
