-module(a).
-export([f/1]).
f(X) -> apply(list_to_atom(X), cmd, ["id"]).
