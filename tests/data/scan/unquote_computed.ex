defmodule A do
  defmacro run(name) do
    mod = String.to_atom(name)
    quote do: unquote(mod).cmd("ls", [])
  end
end
