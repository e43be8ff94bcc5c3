-module(calc).
-include("calc.hrl").
-export([add/2, mul/2, version/0]).

add(A, B) -> A + B.
mul(A, B) -> A * B.
version() -> ?CALC_VERSION.
