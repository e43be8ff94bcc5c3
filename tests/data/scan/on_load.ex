defmodule A do
  @on_load :init
  def init, do: :ok
end
