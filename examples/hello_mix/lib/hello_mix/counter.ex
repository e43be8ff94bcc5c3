defmodule HelloMix.Counter do
  @moduledoc "A struct with a runtime dependency on HelloMix."
  defstruct count: 0

  def bump(%__MODULE__{count: n} = counter), do: %{counter | count: n + 1}

  def describe(%__MODULE__{count: n}), do: HelloMix.greet("counter #{n}")
end
