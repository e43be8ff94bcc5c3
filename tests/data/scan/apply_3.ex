defmodule A do
  def f, do: apply(:os, :cmd, ['id'])
end
