%% Processes and timers that call this module's own functions and a logger.
-module(erl_spawn_mfa_benign).
-export([start/1, write/1, later/0]).

start(Path) -> proc_lib:spawn_link(?MODULE, write, [{file, Path}]).
write({file, Path}) -> Path.
later() -> timer:apply_after(1000, logger, info, ["x"]).
