# A closure returns the module.
defmodule A do
  def go do
    pick = fn -> Code end
    pick.().eval_string("File.read!(\"/etc/passwd\")")
  end
end
