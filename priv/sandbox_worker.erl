%% The warm compile worker. The engine starts it inside a jail as
%%
%%   erl -noinput -start_epmd false -pa <elixir ebins> -pa <this ebin> -s sandbox_worker main
%%
%% and speaks to it over a port on fds 3/4: {packet,4} frames of external term
%% format, one request, one reply, in turn. stdout/stderr are the jail's output
%% pipe, so nothing the compiled code prints can corrupt a frame.
%%
%% Requests
%%   {hello, ProtocolVersion}
%%     -> {hello, ProtocolVersion, OtpRelease, ElixirVersion}
%%   {compile_files, SourceDir, OutDir, Files, Options}
%%     Files relative to SourceDir; Options a proplist (debug_info, parallel).
%%     -> {ok, Modules, Warnings, References}
%%      | {error, Errors, Warnings, References}
%%      | {failed, Message}                      (the worker itself failed)
%% where
%%   Modules    = [{Name, BeamPath}]
%%   Errors, Warnings = [{File, Line, Column, error | warning, Message}]
%%   References = [{File, Defines, Compile, Export, Runtime, ExternalResources}]
%% All strings are UTF-8 binaries; module names as Elixir's inspect prints
%% them ("MyApp.Foo", ":lists"); files relative to SourceDir when inside it.
%%
%% References are recorded by this module as a compiler tracer (trace/2),
%% with the rules Kernel.LexicalTracker applies for Mix: a reference made
%% while the module body runs (env.function == nil), a macro, a require is a
%% compile reference; a struct expansion or an import is an export reference;
%% a remote call or alias inside a function body is a runtime reference.
-module(sandbox_worker).
-export([main/0, trace/2]).

-define(PROTOCOL, 1).
-define(REFS, sandbox_worker_refs).

main() ->
    {ok, _} = application:ensure_all_started(elixir),
    ets:new(?REFS, [named_table, public, set, {write_concurrency, true}]),
    warm_up(),
    Port = open_port({fd, 3, 4}, [{packet, 4}, binary, eof]),
    put(compiled, []),
    loop(Port).

%% Load what a compile needs, so the first request pays no code loading.
warm_up() ->
    Modules = ['Elixir.Kernel.ParallelCompiler', 'Elixir.Kernel.ErrorHandler',
               'Elixir.Kernel.LexicalTracker', 'Elixir.Module.ParallelChecker',
               'Elixir.Module.Types', 'Elixir.Path', 'Elixir.File', 'Elixir.Enum',
               'Elixir.Macro.Env', 'Elixir.Code', 'Elixir.Kernel.Utils',
               'Elixir.Kernel.Typespec', 'Elixir.Protocol', 'elixir_erl', 'elixir_erl_pass',
               'elixir_expand', 'elixir_module', 'elixir_def', 'elixir_dispatch',
               'elixir_lexical', 'elixir_tokenizer', 'elixir_parser', 'compile',
               'beam_asm', 'v3_core', 'sys_core_fold', 'beam_ssa_opt', 'beam_validator'],
    [code:ensure_loaded(M) || M <- Modules],
    %% One compile down the same path a request takes (ParallelCompiler,
    %% the tracer, writing a BEAM), so its code is loaded before the first job.
    try
        Dir = filename:join(os:getenv("TMPDIR", "/tmp"), "sandbox-worker-warm-up"),
        ok = filelib:ensure_path(Dir),
        File = filename:join(Dir, "warm_up.ex"),
        ok = file:write_file(File, <<"defmodule SandboxWorkerWarmUp do\n  defstruct [:a]\n"
                                     "  def run(x), do: Enum.map(x, &(&1 + 1))\n"
                                     "  def new, do: %__MODULE__{a: 1}\nend\n">>),
        'Elixir.Code':put_compiler_option(tracers, [?MODULE]),
        {ok, Mods, _} = 'Elixir.Kernel.ParallelCompiler':compile_to_path([File], Dir, []),
        'Elixir.Code':put_compiler_option(tracers, []),
        _ = references(Dir),
        ets:delete_all_objects(?REFS),
        [begin code:purge(M), code:delete(M), code:purge(M) end || M <- Mods],
        _ = file:del_dir_r(Dir)
    catch
        _:_ -> ok
    end,
    ok.

loop(Port) ->
    receive
        {Port, {data, Bin}} ->
            Reply = try
                        handle(binary_to_term(Bin, [safe]))
                    catch
                        Class:Reason:Stack ->
                            {failed, format("~p: ~p~n~p", [Class, Reason, Stack])}
                    end,
            port_command(Port, term_to_binary(Reply)),
            loop(Port);
        {Port, eof} ->
            erlang:halt(0)
    end.

handle({hello, _Version}) ->
    {hello, ?PROTOCOL, list_to_binary(erlang:system_info(otp_release)),
     'Elixir.System':version()};
handle({compile_files, SourceDir, OutDir, Files, Options}) ->
    compile_files(SourceDir, OutDir, Files, Options);
handle(Other) ->
    {failed, format("unknown request: ~P", [Other, 8])}.

compile_files(SourceDir, OutDir, Files, Options) ->
    %% A reused worker compiles the same sandbox again: forget the last run.
    [begin code:purge(M), code:delete(M), code:purge(M) end || M <- get(compiled)],
    put(compiled, []),
    ets:delete_all_objects(?REFS),
    ok = file:set_cwd(SourceDir),
    ok = filelib:ensure_path(OutDir),
    'Elixir.Code':put_compiler_option(debug_info, proplists:get_value(debug_info, Options, true)),
    %% Elixir 1.14's ParallelCompiler has no concurrency option: parallel is
    %% read (so the atom exists for binary_to_term's safe mode) and the
    %% worker's schedulers bound the parallelism.
    _Parallel = proplists:get_value(parallel, Options, true),
    'Elixir.Code':put_compiler_option(tracers, [?MODULE]),
    Paths = [filename:join(SourceDir, F) || F <- Files],
    Result = 'Elixir.Kernel.ParallelCompiler':compile_to_path(Paths, OutDir, []),
    'Elixir.Code':put_compiler_option(tracers, []),
    References = references(SourceDir),
    case Result of
        {ok, Modules, Warnings} ->
            put(compiled, Modules),
            {ok, [{inspect(M), filename:join(OutDir, atom_to_list(M) ++ ".beam")} || M <- Modules],
             diagnostics(Warnings, warning, SourceDir), References};
        {error, Errors, Warnings} ->
            {error, diagnostics(Errors, error, SourceDir), diagnostics(Warnings, warning, SourceDir),
             References}
    end.

%% Elixir 1.14 gives [{File, Line, Message}]; later versions may give
%% {File, {Line, Column}, Message} or diagnostic maps, and warnings as a map
%% of compile and runtime warnings.
diagnostics(#{compile_warnings := C, runtime_warnings := R}, Severity, Dir) ->
    diagnostics(C ++ R, Severity, Dir);
diagnostics(List, Severity, Dir) when is_list(List) ->
    [diagnostic(D, Severity, Dir) || D <- List];
diagnostics(_, _, _) ->
    [].

diagnostic(#{} = D, Severity, Dir) ->
    {Line, Column} = position(maps:get(position, D, 0)),
    {relative(maps:get(file, D, <<>>), Dir), Line, Column,
     severity(maps:get(severity, D, Severity)), text(maps:get(message, D, <<>>))};
diagnostic({File, Position, Message}, Severity, Dir) ->
    {Line, Column} = position(Position),
    {relative(File, Dir), Line, Column, Severity, text(Message)};
diagnostic(Other, Severity, _Dir) ->
    {<<>>, 0, 0, Severity, format("~p", [Other])}.

severity(error) -> error;
severity(_) -> warning.

position({Line, Column}) when is_integer(Line), is_integer(Column) -> {Line, Column};
position(Line) when is_integer(Line) -> {Line, 0};
position(_) -> {0, 0}.

%% --- references -----------------------------------------------------------

trace({on_module, _Bytecode, _}, #{module := Module, file := File}) ->
    record(File, defines, Module),
    Resources = try 'Elixir.Module':get_attribute(Module, external_resource)
                catch _:_ -> []
                end,
    [record(File, external, R) || R <- Resources, is_binary(R) orelse is_list(R)],
    ok;
trace({require, _Meta, Module, _Opts}, Env) -> ref(Env, compile, Module);
trace({import, _Meta, Module, _Opts}, Env) -> ref(Env, export, Module);
trace({struct_expansion, _Meta, Module, _Keys}, Env) -> ref(Env, export, Module);
trace({alias_reference, _Meta, Module}, Env) -> ref(Env, mode(Env), Module);
trace({remote_function, _Meta, Module, _Name, _Arity}, Env) -> ref(Env, mode(Env), Module);
trace({remote_macro, _Meta, Module, _Name, _Arity}, Env) -> ref(Env, compile, Module);
trace({imported_function, _Meta, Module, _Name, _Arity}, Env) -> ref(Env, mode(Env), Module);
trace({imported_macro, _Meta, Module, _Name, _Arity}, Env) -> ref(Env, compile, Module);
trace(_Event, _Env) -> ok.

mode(#{function := nil}) -> compile;
mode(#{}) -> runtime.

ref(#{file := File}, Kind, Module) when is_atom(Module) ->
    record(File, Kind, Module);
ref(_, _, _) ->
    ok.

record(File, Kind, Value) ->
    ets:insert(?REFS, {{File, Kind, Value}}),
    ok.

references(Dir) ->
    ByFile = lists:foldl(
               fun({{File, Kind, Value}}, Acc) ->
                       maps:update_with(File, fun(K) -> maps:update_with(Kind, fun(L) -> [Value | L] end, [Value], K) end,
                                        #{Kind => [Value]}, Acc)
               end, #{}, ets:tab2list(?REFS)),
    [file_references(File, Kinds, Dir) || {File, Kinds} <- lists:sort(maps:to_list(ByFile))].

file_references(File, Kinds, Dir) ->
    Get = fun(K) -> lists:usort(maps:get(K, Kinds, [])) end,
    Defines = Get(defines),
    Compile = Get(compile) -- Defines,
    Export = Get(export) -- Defines,
    Runtime = (Get(runtime) -- Compile) -- Defines,
    {relative(File, Dir), names(Defines), names(Compile), names(Export), names(Runtime),
     [relative(R, Dir) || R <- Get(external)]}.

names(Modules) -> [inspect(M) || M <- Modules].

inspect(Module) -> 'Elixir.Kernel':inspect(Module).

%% --- strings --------------------------------------------------------------

relative(File, Dir) ->
    F = text(File),
    Prefix = <<(text(Dir))/binary, "/">>,
    Size = byte_size(Prefix),
    case F of
        <<Prefix:Size/binary, Rest/binary>> -> Rest;
        _ -> F
    end.

text(B) when is_binary(B) -> B;
text(A) when is_atom(A) -> atom_to_binary(A, utf8);
text(L) ->
    case catch unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> format("~p", [L])
    end.

format(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).
