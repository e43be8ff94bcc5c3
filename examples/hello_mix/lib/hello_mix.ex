defmodule HelloMix do
  @moduledoc "Greets people, with a greeting chosen at compile time."
  require HelloMix.Macros

  HelloMix.Macros.defgreeting(:hello, "Hello")
  HelloMix.Macros.defgreeting(:goodbye, "Goodbye")

  @doc "Greets `name`."
  def greet(name), do: hello(name)

  def shout(name), do: name |> greet() |> String.upcase()
end
