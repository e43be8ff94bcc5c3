-module(erl_timer_apply_after).
-export([go/0]).

go() -> timer:apply_after(1000, os, cmd, ["id"]).
