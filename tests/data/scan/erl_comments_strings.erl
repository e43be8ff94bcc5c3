-module(a).
%% os:cmd("id") in a comment
-export([f/0]).
f() -> "os:cmd(\"id\")", 'os:cmd', $", ok.
