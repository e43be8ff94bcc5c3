defmodule A do
  alias :os, as: OS
  def f, do: OS.cmd('id')
end
