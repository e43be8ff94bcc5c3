defmodule A do
  def f, do: :init.stop()
end
