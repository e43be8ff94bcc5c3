-module(a).
-export([f/1]).
-spec f(file:filename()) -> os:timestamp().
f(X) -> erlang:float_to_binary(X, [compact]).
