# A module attribute holds a map of modules, read at run time.
defmodule A do
  @backends %{fs: File}
  def wipe(dir), do: Map.fetch!(@backends, :fs).rm_rf(dir)
end
