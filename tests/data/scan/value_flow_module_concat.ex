# Module.concat builds the module in one function; another calls it.
defmodule A do
  def impl(name), do: Module.concat([name])
  def go(name, port_name), do: impl(name).open_port({:spawn, port_name}, [])
end
