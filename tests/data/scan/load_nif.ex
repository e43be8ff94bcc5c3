defmodule A do
  def init, do: :erlang.load_nif(~c"./priv/a", 0)
end
