defmodule Shapes.Format do
  @moduledoc "Formats areas; calls Shapes at run time."

  def describe(shape), do: "area #{Shapes.area(shape)}"
end
