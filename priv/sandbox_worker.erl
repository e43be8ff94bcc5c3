%% The warm compile worker. The engine starts it inside a jail as
%%
%%   erl -noinput -start_epmd false -pa <elixir ebins> -pa <this ebin> -s sandbox_worker main
%%
%% with the request's sources at /sandbox (read-only; the same path a jailed
%% elixirc or mix job sees, so the BEAMs are the same) and /job writable.
%%
%% and speaks to it over a port on fds 3/4: {packet,4} frames of external term
%% format, one request, one reply, in turn. stdout/stderr are the jail's output
%% pipe, so nothing the compiled code prints can corrupt a frame.
%%
%% Requests
%%   {hello, ProtocolVersion}
%%     -> {hello, ProtocolVersion, OtpRelease, ElixirVersion}
%%   {compile_files, SourceDir, OutDir, Files, Options}
%%     Files relative to SourceDir; Options a proplist (debug_info, parallel,
%%     code_path: directories put first on the code path for this request).
%%     -> {ok, Modules, Warnings, References}
%%      | {error, Errors, Warnings, References}
%%      | {failed, Message}                      (the worker itself failed)
%%   {loaded_modules}
%%     -> {modules, Names}   every module loaded or on the code path, as
%%                           UTF-8 binaries of their atoms ("Elixir.Enum")
%%   {check, AtomBudget, MemoryBudget}
%%     The hygiene check between two jobs: the last job's modules are purged
%%     and deleted, then the VM is compared with the baseline taken after the
%%     warm-up (see baseline/0).
%%     -> ok | {dirty, What}   What names the first difference
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
    put(compiled, []),
    warm_up(),
    Port = open_port({fd, 3, 4}, [{packet, 4}, binary, eof]),
    put(baseline, baseline()),
    loop(Port).

%% Make the worker truly ready before it answers the handshake: every module
%% of the applications a compile runs (elixir, compiler, stdlib) is loaded,
%% then one compile goes down the exact path a request takes (the tracer,
%% ParallelCompiler writing BEAMs, a warning, the references), so the first
%% request loads no code. A warm-up that fails crashes the worker: a worker
%% that would be slow or broken is never offered to a job.
warm_up() ->
    _ = application:load(compiler),
    Modules = lists:append([Ms || App <- [elixir, compiler, stdlib],
                                  {ok, Ms} <- [application:get_key(App, modules)]]),
    ok = code:ensure_modules_loaded(Modules),
    Dir = unicode:characters_to_binary(
            filename:join(os:getenv("TMPDIR", "/tmp"), "sandbox-worker-warm-up")),
    Src = filename:join(Dir, <<"src">>),
    Out = filename:join(Dir, <<"out">>),
    ok = filelib:ensure_path(Src),
    ok = filelib:ensure_path(Out),
    ok = file:write_file(filename:join(Src, <<"warm_up.ex">>), warm_up_source()),
    {ok, _, _, _} = compile_files(Src, Out, [<<"warm_up.ex">>], [{debug_info, true}]),
    forget_compiled(),
    ets:delete_all_objects(?REFS),
    ok = file:set_cwd("/"),
    ok = file:del_dir_r(Dir).

%% Common constructs, so their compile-time code runs once: a struct, a
%% protocol and its implementation, a behaviour, typespecs, docs, macros,
%% import/require/alias/use, guards, binaries, sigils, try/rescue, an
%% exception, module attributes, and an unused variable (a warning).
warm_up_source() ->
    <<"defmodule SandboxWorkerWarmUp.Behaviour do\n"
      "  @callback run(term) :: term\n"
      "  defmacro __using__(_opts) do\n"
      "    quote do\n"
      "      @behaviour SandboxWorkerWarmUp.Behaviour\n"
      "      import SandboxWorkerWarmUp.Behaviour, only: [twice: 1]\n"
      "    end\n"
      "  end\n"
      "  defmacro twice(x), do: quote(do: unquote(x) * 2)\n"
      "end\n"
      "defprotocol SandboxWorkerWarmUp.Proto do\n"
      "  @spec size(t) :: non_neg_integer\n"
      "  def size(x)\n"
      "end\n"
      "defmodule SandboxWorkerWarmUp.Error do\n"
      "  defexception [:message]\n"
      "end\n"
      "defmodule SandboxWorkerWarmUp do\n"
      "  @moduledoc \"Warm-up.\"\n"
      "  use SandboxWorkerWarmUp.Behaviour\n"
      "  require Logger\n"
      "  alias SandboxWorkerWarmUp.Proto\n"
      "  @enforce_keys [:a]\n"
      "  defstruct [:a, b: %{}]\n"
      "  @type t :: %__MODULE__{a: integer, b: map}\n"
      "  @limit 10\n"
      "  @doc \"Runs.\"\n"
      "  @impl true\n"
      "  @spec run([integer]) :: [integer]\n"
      "  def run(x) when is_list(x) and length(x) < @limit, do: Enum.map(x, &(&1 + twice(1)))\n"
      "  def run(x), do: x |> Stream.map(&to_string/1) |> Enum.join(\",\")\n"
      "  def new, do: %__MODULE__{a: 1}\n"
      "  def bump(%__MODULE__{a: a} = s), do: %{s | a: a + 1}\n"
      "  def parse(<<size::8, rest::binary-size(size), _::binary>>), do: {:ok, rest}\n"
      "  def parse(other) when is_binary(other), do: {:error, ~s(bad #{inspect(other)})}\n"
      "  def words, do: ~w(a b c)a\n"
      "  def safe(f) do\n"
      "    try do\n"
      "      f.()\n"
      "    rescue\n"
      "      e in [ArgumentError, SandboxWorkerWarmUp.Error] -> {:error, Exception.message(e)}\n"
      "    catch\n"
      "      :exit, reason -> {:exit, reason}\n"
      "    end\n"
      "  end\n"
      "  def check(x) do\n"
      "    with {:ok, y} <- parse(x), true <- byte_size(y) > 0 do\n"
      "      for <<c <- y>>, c > 32, into: \"\", do: <<c>>\n"
      "    else\n"
      "      _ -> Logger.debug(\"no\")\n"
      "    end\n"
      "  end\n"
      "  def unused(value), do: :ok\n"
      "  def size(x), do: Proto.size(x)\n"
      "end\n"
      "defimpl SandboxWorkerWarmUp.Proto, for: SandboxWorkerWarmUp do\n"
      "  def size(%{b: b}), do: map_size(b)\n"
      "end\n">>.

%% The request's extra code path goes, with every module loaded from it.
forget_code_paths([]) ->
    ok;
forget_code_paths(Dirs) ->
    Lists = [binary_to_list(D) || D <- Dirs],
    [code:del_path(D) || D <- Lists],
    [begin code:purge(M), code:delete(M), code:purge(M) end
     || {M, File} <- code:all_loaded(), is_list(File),
        lists:member(filename:dirname(File), Lists)],
    ok.

forget_compiled() ->
    [begin code:purge(M), code:delete(M), code:purge(M) end || M <- get(compiled)],
    put(compiled, []).

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
handle({loaded_modules}) ->
    {modules, known_modules()};
handle({check, AtomBudget, MemoryBudget}) when is_integer(AtomBudget), is_integer(MemoryBudget) ->
    check(AtomBudget, MemoryBudget);
handle(Other) ->
    {failed, format("unknown request: ~P", [Other, 8])}.

compile_files(SourceDir, OutDir, Files, Options) ->
    %% A reused worker compiles the same sandbox again: forget the last run.
    forget_compiled(),
    ets:delete_all_objects(?REFS),
    ok = file:set_cwd(SourceDir),
    ok = filelib:ensure_path(OutDir),
    'Elixir.Code':put_compiler_option(debug_info, proplists:get_value(debug_info, Options, true)),
    %% Elixir 1.14's ParallelCompiler has no concurrency option: parallel is
    %% read (so the atom exists for binary_to_term's safe mode) and the
    %% worker's schedulers bound the parallelism.
    _Parallel = proplists:get_value(parallel, Options, true),
    CodePaths = [text(D) || D <- proplists:get_value(code_path, Options, [])],
    ok = code:add_pathsa([binary_to_list(D) || D <- CodePaths]),
    'Elixir.Code':put_compiler_option(tracers, [?MODULE]),
    Paths = [filename:join(SourceDir, F) || F <- Files],
    Result = try
                 'Elixir.Kernel.ParallelCompiler':compile_to_path(Paths, OutDir, compile_options())
             after
                 'Elixir.Code':put_compiler_option(tracers, []),
                 'Elixir.Code':put_compiler_option(debug_info, true),
                 forget_code_paths(CodePaths)
             end,
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

%% Elixir 1.15 and later return structured diagnostics (maps with file,
%% position {Line, Column}, severity and message) when asked; 1.14 has only
%% its tuples.
compile_options() ->
    case 'Elixir.Version':compare('Elixir.System':version(), <<"1.15.0">>) of
        lt -> [];
        _ -> [{return_diagnostics, true}]
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
    File = case maps:get(file, D, nil) of
               nil -> <<>>;
               F -> F
           end,
    {relative(File, Dir), Line, Column,
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

%% --- hygiene ---------------------------------------------------------------

%% Every module the VM has loaded or could load from its code path, as
%% binaries: listing the path makes no atoms.
known_modules() ->
    Loaded = [atom_to_binary(M, utf8) || {M, _} <- code:all_loaded()],
    OnPath = [list_to_binary(filename:basename(F, ".beam"))
              || Dir <- code:get_path(),
                 F <- case file:list_dir(Dir) of
                          {ok, Names} -> Names;
                          _ -> []
                      end,
                 filename:extension(F) =:= ".beam"],
    lists:usort(Loaded ++ OnPath).

%% What a job could leave behind in this VM, taken once after the warm-up
%% and again after every job. Terms are compared whole (=:=), never hashed.
baseline() ->
    #{state => state(),
      atoms => erlang:system_info(atom_count),
      memory => erlang:memory(total)}.

state() ->
    Loaded = lists:sort([M || {M, _} <- code:all_loaded()]),
    %% The tables of the code server and the application controller change
    %% size when a module is autoloaded; what they hold is compared as
    %% loaded_modules, code_path and application_env.
    Covered = [whereis(code_server), whereis(application_controller)],
    [{processes, lists:sort(erlang:processes())},
     {registered_names, lists:sort(erlang:registered())},
     {ets_tables, lists:sort([ets_table(T, Covered) || T <- ets:all(), T =/= ?REFS])},
     {ports, lists:sort(erlang:ports())},
     {persistent_term, lists:sort(persistent_term:get())},
     {application_env, lists:sort([{A, lists:sort(application:get_all_env(A))}
                                   || {A, _, _} <- application:loaded_applications()])},
     {applications, lists:sort(application:which_applications())},
     {code_path, code:get_path()},
     {compiler_options, 'Elixir.Code':compiler_options()},
     {required_files, 'Elixir.Code':required_files()},
     {os_environment, lists:sort(os:getenv())},
     {logger, logger:get_config()},
     {loaded_modules, [{M, module_md5(M), code:is_sticky(M)} || M <- Loaded]},
     {old_code, [M || M <- Loaded, erlang:check_old_code(M)]},
     {trace_flags, [{P, F} || P <- erlang:processes(),
                              {flags, F} <- [erlang:trace_info(P, flags)], F =/= []]},
     {trace_defaults, [erlang:trace_info(new_processes, flags), erlang:trace_info(new_ports, flags),
                       erlang:trace_info(on_load, traced)]},
     {system_monitor, {erlang:system_monitor(), erlang:system_profile()}},
     {distribution, {node(), erlang:is_alive(), nodes(hidden)}},
     {worker_process, [{K, V} || {K, V} <- get(), K =/= baseline, K =/= compiled]},
     {worker_links, [{K, if is_list(V) -> lists:sort(V); true -> V end}
                     || {K, V} <- erlang:process_info(self(), [links, monitors, monitored_by,
                                                               trap_exit, group_leader, priority])]},
     {cwd, file:get_cwd()}].

ets_table(T, Covered) ->
    Owner = ets:info(T, owner),
    Size = case lists:member(Owner, Covered) of
               true -> covered;
               false -> ets:info(T, size)
           end,
    {T, ets:info(T, name), Owner, Size}.

module_md5(M) ->
    try erlang:get_module_info(M, md5)
    catch _:_ -> undefined
    end.

%% After a job: its modules go, then the VM must be as the baseline found it.
%% The processes a compile spawned may still be exiting when the reply is
%% sent: they get up to two seconds to end before a difference counts.
check(AtomBudget, MemoryBudget) ->
    forget_compiled(),
    ets:delete_all_objects(?REFS),
    ok = file:set_cwd("/"),
    #{state := Base, atoms := Atoms, memory := Memory} = get(baseline),
    case settle(Base, 1) of
        {dirty, _} = Dirty ->
            Dirty;
        ok ->
            erlang:garbage_collect(),
            AtomsNow = erlang:system_info(atom_count),
            MemoryNow = erlang:memory(total),
            if
                AtomsNow - Atoms > AtomBudget ->
                    {dirty, format("atoms: ~b over the baseline, the budget is ~b",
                                   [AtomsNow - Atoms, AtomBudget])};
                MemoryNow - Memory > MemoryBudget ->
                    {dirty, format("memory: ~b bytes over the baseline, the budget is ~b",
                                   [MemoryNow - Memory, MemoryBudget])};
                true ->
                    ok
            end
    end.

settle(Base, Tries) ->
    case first_difference(Base, state()) of
        none ->
            ok;
        {processes, Now} when Tries > 0 ->
            %% Wait for the processes the baseline lacks to end (monitors,
            %% not polling), for at most two seconds in all.
            {processes, Was} = lists:keyfind(processes, 1, Base),
            Refs = [erlang:monitor(process, P) || P <- Now -- Was],
            Deadline = erlang:monotonic_time(millisecond) + 2000,
            [receive {'DOWN', R, process, _, _} -> ok
             after max(0, Deadline - erlang:monotonic_time(millisecond)) -> erlang:demonitor(R, [flush])
             end || R <- Refs],
            settle(Base, Tries - 1);
        {loaded_modules, Now} = Difference ->
            %% A standard-library module a job autoloaded from the code path,
            %% byte for byte what is on disk, is what the next job would load
            %% itself: it joins the baseline. Anything else is a difference.
            {loaded_modules, Was} = lists:keyfind(loaded_modules, 1, Base),
            case Was -- Now =:= [] andalso lists:all(fun autoloaded/1, Now -- Was) of
                true ->
                    NewBase = lists:keyreplace(loaded_modules, 1, Base, {loaded_modules, Now}),
                    put(baseline, (get(baseline))#{state := NewBase}),
                    settle(NewBase, Tries);
                false ->
                    Extra = [M || {M, _, _} = E <- Now -- Was, not autoloaded(E)],
                    {dirty, format("~s differ from the baseline: ~0P",
                                   [element(1, Difference),
                                    #{added => Extra, removed => [M || {M, _, _} <- Was -- Now]}, 12])}
            end;
        {What, Now} ->
            {What, Was} = lists:keyfind(What, 1, Base),
            {dirty, format("~s differ from the baseline: ~0P", [What, difference(Was, Now), 12])}
    end.

difference(Was, Now) when is_list(Was), is_list(Now) ->
    #{added => Now -- Was, removed => Was -- Now};
difference(Was, Now) ->
    #{was => Was, now => Now}.

autoloaded({M, MD5, Sticky}) ->
    case code:which(M) of
        File when is_list(File) ->
            lists:member(filename:dirname(File), code:get_path()) andalso
                Sticky =:= code:is_sticky(M) andalso
                beam_lib:md5(File) =:= {ok, {M, MD5}};
        _ ->
            false
    end.

first_difference([{What, Value} | Base], [{What, Value} | Now]) ->
    first_difference(Base, Now);
first_difference([{What, _} | _], [{What, Now} | _]) ->
    {What, Now};
first_difference([], []) ->
    none.

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
