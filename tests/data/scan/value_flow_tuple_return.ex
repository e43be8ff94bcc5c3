# A function returns the module and the function; apply calls them.
defmodule A do
  defp target, do: {System, :cmd}

  def go do
    {m, f} = target()
    apply(m, f, ["id", []])
  end
end
