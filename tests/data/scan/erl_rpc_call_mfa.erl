-module(erl_rpc_call_mfa).
-export([go/1]).

go(Node) -> rpc:call(Node, os, cmd, ["id"]).
