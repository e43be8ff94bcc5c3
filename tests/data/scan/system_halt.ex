defmodule A do
  System.halt(1)
end
