defmodule A do
  defmacro sh(c) do
    quote do
      System.cmd(unquote(c), [])
    end
  end
end
