defmodule A do
  def f, do: :erl_ddll.load_driver(~c".", ~c"drv")
end
