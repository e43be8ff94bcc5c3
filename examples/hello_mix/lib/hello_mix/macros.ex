defmodule HelloMix.Macros do
  @moduledoc "A macro module: its callers depend on it at compile time."

  defmacro defgreeting(name, word) do
    quote do
      def unquote(name)(who), do: unquote(word) <> ", " <> who <> "!"
    end
  end
end
