# Example 5 of the compilation guide: Compilation with Custom Environment.
# The code below is the guide's, unchanged.

defmodule MyApp.EnvironmentCompiler do
  alias Sandbox.IsolatedCompiler

  def compile_for_production(source_path, app_config) do
    IsolatedCompiler.compile_sandbox(source_path,
      compiler: :mix,
      env: %{
        "MIX_ENV" => "prod",
        "SECRET_KEY_BASE" => app_config.secret_key,
        "DATABASE_URL" => app_config.database_url,
        "APP_VERSION" => app_config.version
      },
      timeout: 120_000,  # 2 minutes for production builds
      incremental: false, # Full build for production
      validate_beams: true
    )
  end

  def compile_for_development(source_path) do
    IsolatedCompiler.compile_sandbox(source_path,
      compiler: :elixirc,  # Faster for development
      env: %{
        "MIX_ENV" => "dev"
      },
      incremental: true,
      cache_enabled: true,
      validate_beams: false  # Skip validation for speed
    )
  end
end
