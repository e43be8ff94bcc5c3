# Agent.update/4 calls File.rm_rf!(state) in the agent process.
defmodule A do
  def f(agent), do: Agent.update(agent, File, :rm_rf!, [])
end
