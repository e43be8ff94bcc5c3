# The module goes through the process dictionary.
defmodule A do
  def setup, do: Process.put(:loader, :erlang)
  def go(path), do: Process.get(:loader).load_nif(path, 0)
end
