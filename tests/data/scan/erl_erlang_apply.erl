-module(a).
-export([f/0]).
f() -> erlang:apply(os, cmd, ["id"]).
