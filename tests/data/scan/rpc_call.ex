defmodule A do
  def f, do: :rpc.call(:"a@b", :os, :cmd, [~c"id"])
end
