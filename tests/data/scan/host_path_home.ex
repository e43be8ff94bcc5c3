defmodule A do
  def f, do: File.read("~/.ssh/id_rsa")
end
