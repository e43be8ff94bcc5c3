%% The module is an element of a list a fun receives.
-module(erl_value_flow_list).
-export([go/0]).

go() -> lists:foreach(fun(M) -> M:cmd("id") end, [os]).
