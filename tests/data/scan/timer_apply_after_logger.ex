defmodule A do
  require Logger
  def f, do: :timer.apply_after(1000, Logger, :info, ["x"])
end
