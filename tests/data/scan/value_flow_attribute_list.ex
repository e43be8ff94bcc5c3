# A module attribute holds a list of modules; a comprehension calls them.
defmodule A do
  @shells [System]
  def go, do: for(m <- @shells, do: m.shell("id"))
end
