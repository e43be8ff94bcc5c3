-module(a).
-export([f/0]).
f() -> 'os':'cmd'("id").
