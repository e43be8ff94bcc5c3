defmodule A do
  def f, do: :gen_tcp.connect(~c"example.com", 80, [])
end
