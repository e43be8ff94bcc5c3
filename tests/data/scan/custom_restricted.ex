defmodule A do
  def f, do: MyApp.Danger.go()
end
