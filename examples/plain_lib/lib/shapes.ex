defmodule Shapes do
  @moduledoc "Areas of simple shapes."

  def area({:square, side}), do: side * side
  def area({:rectangle, w, h}), do: w * h
  def area({:circle, r}), do: Float.round(:math.pi() * r * r, 2)

  def total(shapes), do: shapes |> Enum.map(&area/1) |> Enum.sum()

  def unused_warning(x) do
    y = 1
    x
  end
end
