-module(calc_server).
-export([eval/1]).

%% Evaluates {add, A, B} and {mul, A, B} with calc.
eval({add, A, B}) -> calc:add(A, B);
eval({mul, A, B}) -> calc:mul(A, B).
