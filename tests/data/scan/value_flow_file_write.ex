# A file module as a default argument; a medium-severity function of it.
defmodule A do
  def save(data, fs \\ File), do: fs.write!("out.txt", data)
end
