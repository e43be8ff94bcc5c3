import Config
config :a, key: System.get_env("A_KEY")
