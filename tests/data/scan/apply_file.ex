defmodule A do
  def f, do: apply(File, :rm_rf!, ["x"])
end
