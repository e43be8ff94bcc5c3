defmodule SandboxClient.MixProject do
  use Mix.Project

  def project do
    [
      app: :sandbox_client,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: false,
      elixirc_paths: elixirc_paths(Mix.env()),
      # No Hex dependencies: the client builds and tests offline.
      deps: []
    ]
  end

  # The guide's examples are compiled with the tests, which run them.
  defp elixirc_paths(:test), do: ["lib", "examples", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  def application do
    [extra_applications: [:logger]]
  end
end
