-module(a).
-export([f/0]).
f() -> F = fun os:cmd/1, F("id").
