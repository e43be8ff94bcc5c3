defmodule A do
  import Task.Supervisor, only: [start_child: 4]
  def f(sup), do: start_child(sup, :os, :cmd, [~c"id"])
end
