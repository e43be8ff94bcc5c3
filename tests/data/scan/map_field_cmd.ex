defmodule A do
  def f(opts), do: opts.cmd
end
