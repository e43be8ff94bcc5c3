defmodule A do
  if Version.match?(System.version(), ">= 1.10.0") do
    def f, do: System.otp_release()
  end
end
