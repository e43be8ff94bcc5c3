defmodule A do
  def f, do: :os |> apply(:cmd, ['id'])
end
