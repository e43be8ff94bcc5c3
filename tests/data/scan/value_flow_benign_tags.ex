# :file and :delete as tags in separate places, and apply of a computed function.
defmodule A do
  def kind({:file, path}), do: {:ok, path}
  def kind(other), do: {:error, other}
  def ops, do: [:read, :delete]
  def call(mod, fun, args), do: apply(mod, fun, args)
end
