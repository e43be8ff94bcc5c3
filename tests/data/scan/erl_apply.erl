-module(a).
-export([f/0]).
f() -> apply(os, cmd, ["id"]).
