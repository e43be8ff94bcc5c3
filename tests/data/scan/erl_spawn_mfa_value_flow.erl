%% The module spawn/3 is given travels in a list a fun receives.
-module(erl_spawn_mfa_value_flow).
-export([go/0]).

go() -> lists:foreach(fun(M) -> spawn(M, cmd, ["id"]) end, [os]).
