# The module is a value of a map.
defmodule A do
  def go(kind) do
    runners = %{shell: System, file: File}
    runners[kind].cmd("id", [])
  end
end
