#!/usr/bin/env bash
# Regenerates the samples in this folder that come from the local toolchain
# (Elixir 1.14 on Erlang/OTP 25). Each sample is exactly what the compiler wrote
# to stdout and stderr, interleaved. The sandbox is /tmp/sandbox-capture so the
# tests can name its absolute path.
set -u
out=$(cd "$(dirname "$0")" && pwd)
root=/tmp/sandbox-capture
elsewhere=/tmp/sandbox-capture-cwd
rm -rf "$root" "$elsewhere"
mkdir -p "$root/lib" "$root/src" "$root/ebin" "$elsewhere"

cat >"$root/lib/a.ex" <<'EOF'
defmodule Foo do
  def bar do
    x = 1
    :ok
  end

  def baz(y), do: :ok

  defp unused_priv, do: :ok

  def calls do
    Foo.nope()
    Foo.nope()
  end
end
EOF
cat >"$root/lib/b.ex" <<'EOF'
defmodule B do
  def f(z) do
    String.upcase(1, 2, 3)
  end
end
EOF
cat >"$root/lib/undefined.ex" <<'EOF'
defmodule Undef do
  def bar do
    foo()
  end
end
EOF
cat >"$root/lib/syntax.ex" <<'EOF'
defmodule Syntax do
  def bar do
    baz(1, )
  end
end
EOF
cat >"$root/lib/missing.ex" <<'EOF'
defmodule Missing do
  def bar do
    :ok
end
EOF
cat >"$root/lib/raise.ex" <<'EOF'
defmodule Raise do
  IO.puts("hi")
  raise "boom"
end
EOF
cat >"$root/lib/key.ex" <<'EOF'
defmodule Key do
  Keyword.fetch!([a: 1], :b)
end
EOF
cat >"$root/src/warn.erl" <<'EOF'
-module(warn).
-export([f/0]).
f() ->
    X = 1,
    ok.
g() -> ok.
EOF
cat >"$root/src/bad.erl" <<'EOF'
-module(bad).
-export([f/0]).
f() -> foo(.
EOF
cat >"$root/src/unbound.erl" <<'EOF'
-module(unbound).
-export([f/0]).
-include("missing.hrl").
f() -> Y.
EOF

run() { # name, dir, command...
  local name=$1 dir=$2
  shift 2
  (cd "$dir" && "$@") >"$out/$name" 2>&1
}

# elixirc, paths relative to the working directory (the sandbox)
run elixirc_1_14_warnings.txt "$root" elixirc -o ebin lib/a.ex lib/b.ex
run elixirc_1_14_warnings_ansi.txt "$root" env ERL_FLAGS="-elixir ansi_enabled true" \
  elixirc -o ebin lib/a.ex
run elixirc_1_14_undefined_function.txt "$root" elixirc -o ebin lib/undefined.ex
run elixirc_1_14_syntax_error.txt "$root" elixirc -o ebin lib/syntax.ex
run elixirc_1_14_token_missing.txt "$root" elixirc -o ebin lib/missing.ex
run elixirc_1_14_raise_in_module_body.txt "$root" elixirc -o ebin lib/raise.ex
run elixirc_1_14_key_error_in_module_body.txt "$root" elixirc -o ebin lib/key.ex
# elixirc run from outside the sandbox: Elixir prints absolute paths
run elixirc_1_14_absolute_paths.txt "$elsewhere" elixirc -o "$root/ebin" "$root/lib/a.ex" \
  "$root/lib/undefined.ex"

# erlc
run erlc_otp25_warnings.txt "$root" erlc -o ebin src/warn.erl
run erlc_otp25_errors.txt "$root" erlc -o ebin src/bad.erl src/unbound.erl
run erlc_otp25_line_only.txt "$root" erlc -o ebin +'{error_location,line}' src/warn.erl src/bad.erl
run erlc_otp25_warnings_as_errors.txt "$root" erlc -o ebin +warnings_as_errors src/warn.erl
run erlc_otp25_absolute_paths.txt "$elsewhere" erlc -o "$root/ebin" "$root/src/bad.erl"
run erlc_otp25_no_such_file.txt "$root" erlc -o ebin src/nonexistent.erl

# mix
proj=$root/proj
mkdir -p "$proj/lib" "$proj/src"
cat >"$proj/mix.exs" <<'EOF'
defmodule Proj.MixProject do
  use Mix.Project
  def project, do: [app: :proj, version: "0.1.0", elixir: "~> 1.14", deps: []]
  def application, do: []
end
EOF
cp "$root/lib/a.ex" "$root/lib/b.ex" "$proj/lib/"
cp "$root/src/warn.erl" "$proj/src/"
run mix_1_14_compile_warnings.txt "$proj" mix compile
run mix_1_14_warnings_as_errors.txt "$proj" mix compile --force --warnings-as-errors
cp "$root/lib/undefined.ex" "$proj/lib/"
run mix_1_14_compile_error.txt "$proj" mix compile
rm "$proj/lib/undefined.ex"
cp "$root/lib/raise.ex" "$proj/lib/"
run mix_1_14_raise_in_module_body.txt "$proj" mix compile
rm "$proj/lib/raise.ex"
cp "$root/src/bad.erl" "$proj/src/"
run mix_1_14_erlang_error.txt "$proj" mix compile --force
rm "$proj/src/bad.erl"
run mix_1_14_task_not_found.txt "$proj" mix nonexistent_task

rm -rf "$root" "$elsewhere"
