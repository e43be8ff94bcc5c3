%% A function returns the module and the function; the call computes both.
-module(erl_value_flow_mfa).
-export([go/1, target/0]).

target() -> {os, cmd}.

go(Arg) ->
    {M, F} = target(),
    M:F(Arg).
