defmodule A do
  def f do
    m = System
    m.cmd("ls", [])
  end
end
