-module(a).
-export([f/1]).
f(X) ->
    case X of
        1 -> lists:reverse([1]);
        _ -> maps:get(a, #{a => 1})
    end.
