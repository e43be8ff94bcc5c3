# Restricted modules as values, but no dangerous function is named.
defmodule A do
  @mods [System, File, :os, Code]
  def available, do: Enum.filter(@mods, &Code.ensure_loaded?/1)
  def has_x?(mod), do: function_exported?(mod, :x, 1)
  def version(mod \\ System), do: mod.version()
  def read(path, fs \\ File), do: fs.read(path)
  def call(mod, fun, args), do: apply(mod, fun, args)
end
