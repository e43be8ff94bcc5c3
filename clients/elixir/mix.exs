defmodule SandboxClient.MixProject do
  use Mix.Project

  # The major version is the engine protocol version the client speaks
  # (Sandbox.Client.protocol_version/0, the engine's `ping`): a host picks the
  # client release whose major version matches the engine it talks to.
  @protocol_version 1
  @version "#{@protocol_version}.0.0"

  def project do
    [
      app: :sandbox_client,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: false,
      elixirc_paths: elixirc_paths(Mix.env()),
      # No Hex dependencies: the client builds and tests offline.
      deps: [],
      description: "Client of the Sandbox engine: compiles untrusted Elixir and Erlang code in an OS jail " <>
        "(Sandbox.IsolatedCompiler, Sandbox.InProcessCompiler)",
      package: package(),
      # For `mix docs` when ex_doc is available to the host building them.
      docs: [main: "readme", extras: ["README.md"], source_ref: "v#{@version}"],
      name: "SandboxClient"
    ]
  end

  # What a Hex package of the client holds. The project has not chosen a
  # license yet; `licenses` must be set before publishing to hex.pm.
  defp package do
    [
      files: ~w(lib mix.exs README.md),
      licenses: [],
      links: %{}
    ]
  end

  # The guide's examples are compiled with the tests, which run them.
  defp elixirc_paths(:test), do: ["lib", "examples", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  def application do
    [extra_applications: [:logger]]
  end
end
