defmodule A do
  alias Elixir.{System, File}
  def f, do: {System.cmd("ls", []), File.rm_rf!("x")}
end
