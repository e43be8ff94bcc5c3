defmodule A do
  @moduledoc """
  Example:
      iex> Code.eval_string("1 + 1")
      :os.cmd('id')
  """
  def f, do: 1
end
