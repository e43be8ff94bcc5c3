defmodule A do
  def f, do: spawn_link(:os, :cmd, [~c"id"])
end
