%% Restricted modules as values and tags, record fields named like them,
%% and apply of a computed function: no dangerous function is named.
-module(erl_value_flow_benign).
-export([kind/1, call/3, loaded/0, path/1]).

-record(state, {file, code, delete}).

kind({file, Name}) -> {ok, Name};
kind(_) -> error.

call(M, F, A) -> apply(M, F, A).

loaded() -> [M || M <- [os, file], code:is_loaded(M) =/= false].

path(#state{file = File}) -> File.
