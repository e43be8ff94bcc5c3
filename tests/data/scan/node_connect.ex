defmodule A do
  def f, do: Node.connect(:"a@host")
end
