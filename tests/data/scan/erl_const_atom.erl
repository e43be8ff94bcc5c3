-module(a).
-export([f/0]).
f() -> apply(list_to_atom("os"), cmd, ["id"]).
