defmodule A do
  def f, do: Module.concat(["Sys" <> "tem"]).cmd("ls", [])
end
