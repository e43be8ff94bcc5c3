defmodule A do
  def start, do: spawn(MyWorker, :loop, [])
  def own(state), do: spawn_link(__MODULE__, :loop, [state])
  def loop(state), do: state
end
