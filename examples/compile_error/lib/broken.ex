defmodule Broken do
  @moduledoc "Calls a function that does not exist: the compile fails."

  def run do
    missing_function(42)
  end
end
