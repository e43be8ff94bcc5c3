defmodule A do
  def f, do: :erlang.open_port({:spawn, "sh"}, [])
end
