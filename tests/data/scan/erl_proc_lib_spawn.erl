-module(erl_proc_lib_spawn).
-export([go/0]).

go() -> proc_lib:spawn_link(erlang, halt, []).
