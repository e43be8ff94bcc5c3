defmodule A do
  @external_resource "README.md"
  @moduledoc File.read!("README.md") |> String.split("<!-- MDOC -->") |> Enum.at(1)
end
