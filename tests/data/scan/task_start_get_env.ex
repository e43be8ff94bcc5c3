# The module given to Task.start is judged there, not used as a value: it
# does not make server.stop() a System.stop.
defmodule A do
  def home, do: Task.start(System, :get_env, ["HOME"])
  def stop(server), do: server.stop()
end
