defmodule A do
  defmodule Sys do
  end
  alias System, as: Sys2
  def f, do: Sys2.shell("id")
end
