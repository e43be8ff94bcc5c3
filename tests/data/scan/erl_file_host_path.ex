defmodule A do
  def f, do: :file.read_file('/etc/passwd')
end
