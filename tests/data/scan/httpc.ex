defmodule A do
  def f, do: :httpc.request(~c"http://x")
end
