defmodule A do
  def f, do: File.ls!(Path.join("/root", "x"))
end
