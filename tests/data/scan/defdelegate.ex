defmodule A do
  defdelegate run(c, a), to: System, as: :cmd
end
