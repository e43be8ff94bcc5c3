defmodule A do
  import :os
  def f, do: cmd('id')
end
