%% spawn/3 is given erlang:apply/3, which is given os:cmd/1.
-module(erl_spawn_mfa_nested).
-export([go/0]).

go() -> erlang:spawn(erlang, apply, [os, cmd, ["id"]]).
