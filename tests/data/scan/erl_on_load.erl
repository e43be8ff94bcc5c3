-module(a).
-on_load(init/0).
init() -> erlang:load_nif("./a", 0).
