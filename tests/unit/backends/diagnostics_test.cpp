#include "backends/diagnostics.h"

#include <chrono>
#include <fstream>
#include <gtest/gtest.h>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace sandbox::core {
// Lets gtest print a diagnostic when an expectation fails.
void PrintTo(const Diagnostic& d, std::ostream* os)
{
  *os << "{" << d.file << ":" << d.line << ":" << d.column << " " << to_string(d.severity) << " \""
      << d.message << "\"}";
}
} // namespace sandbox::core

namespace sandbox::backends {
namespace {

using core::Diagnostic;
using core::Severity;
using Diagnostics = std::vector<Diagnostic>;

// The sandbox the local samples were captured in (see tests/data/diagnostics/capture.sh).
const PathContext kCapture{"/tmp/sandbox-capture", {"/sandbox"}};

std::string sample(const std::string& name)
{
  std::ifstream in(std::string(SANDBOX_TEST_DATA) + "/diagnostics/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Diagnostic warn(std::string file, int line, int column, std::string message)
{
  return {std::move(file), line, column, Severity::warning, std::move(message)};
}

Diagnostic err(std::string file, int line, int column, std::string message)
{
  return {std::move(file), line, column, Severity::error, std::move(message)};
}

const std::string kUnusedX = "variable \"x\" is unused (if the variable is not meant to be "
                             "used, prefix it with an underscore)";
const std::string kUnusedY = "variable \"y\" is unused (if the variable is not meant to be "
                             "used, prefix it with an underscore)";
const std::string kUnusedZ = "variable \"z\" is unused (if the variable is not meant to be "
                             "used, prefix it with an underscore)";
const std::string kDidYouMean =
    "String.upcase/3 is undefined or private. Did you mean:\n\n      * upcase/1\n      * upcase/2";
const std::string kNope = "Foo.nope/0 is undefined or private\nInvalid call found at 2 locations:";
const std::string kUndefFoo = "undefined function foo/0 (expected Undef to define such a function "
                              "or for it to be imported, but none are available)";

// --- Elixir 1.14, captured here -------------------------------------------------

TEST(ElixirDiagnostics, ElixircWarningsOneDiagnosticPerLocation)
{
  Diagnostics expected{
      warn("lib/b.ex", 2, 0, kUnusedZ),
      warn("lib/a.ex", 3, 0, kUnusedX),
      warn("lib/a.ex", 7, 0, kUnusedY),
      warn("lib/a.ex", 9, 0, "function unused_priv/0 is unused"),
      warn("lib/b.ex", 3, 0, kDidYouMean),
      // One warning listing two call sites: a diagnostic for each, same message.
      warn("lib/a.ex", 12, 0, kNope),
      warn("lib/a.ex", 13, 0, kNope),
  };
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_warnings.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, AnsiColoursAreIgnored)
{
  Diagnostics expected{
      warn("lib/a.ex", 3, 0, kUnusedX),
      warn("lib/a.ex", 7, 0, kUnusedY),
      warn("lib/a.ex", 9, 0, "function unused_priv/0 is unused"),
      warn("lib/a.ex", 12, 0, kNope),
      warn("lib/a.ex", 13, 0, kNope),
  };
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_warnings_ansi.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, AbsolutePathsInsideTheSandboxBecomeRelative)
{
  Diagnostics expected{
      warn("lib/a.ex", 3, 0, kUnusedX),
      warn("lib/a.ex", 7, 0, kUnusedY),
      err("lib/undefined.ex", 3, 0, kUndefFoo),
  };
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_absolute_paths.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, CompilerExceptions)
{
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_undefined_function.txt"), kCapture),
            Diagnostics{err("lib/undefined.ex", 3, 0, kUndefFoo)});
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_syntax_error.txt"), kCapture),
            Diagnostics{err("lib/syntax.ex", 3, 12, "syntax error before: ')'")});
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_token_missing.txt"), kCapture),
            Diagnostics{err("lib/missing.ex", 5, 1,
                            "missing terminator: end (for \"do\" starting at line 1)")});
}

TEST(ElixirDiagnostics, RaiseInModuleBodyIsPlacedAtTheUserFrame)
{
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_raise_in_module_body.txt"), kCapture),
            Diagnostics{err("lib/raise.ex", 3, 0, "** (RuntimeError) boom")});
  // The first frame is Elixir's own Keyword.fetch!/2; the user's frame follows.
  EXPECT_EQ(parse_elixir_output(sample("elixirc_1_14_key_error_in_module_body.txt"), kCapture),
            Diagnostics{err("lib/key.ex", 2, 0, "** (KeyError) key :b not found in: [a: 1]")});
}

TEST(ElixirDiagnostics, MixCompileWarningsIncludeErlangFiles)
{
  Diagnostics expected{
      warn("src/warn.erl", 4, 5, "variable 'X' is unused"),
      warn("src/warn.erl", 6, 1, "function g/0 is unused"),
      warn("lib/a.ex", 3, 0, kUnusedX),
      warn("lib/b.ex", 2, 0, kUnusedZ),
      warn("lib/a.ex", 7, 0, kUnusedY),
      warn("lib/a.ex", 9, 0, "function unused_priv/0 is unused"),
      warn("lib/b.ex", 3, 0, kDidYouMean),
      warn("lib/a.ex", 12, 0, kNope),
      warn("lib/a.ex", 13, 0, kNope),
  };
  EXPECT_EQ(parse_elixir_output(sample("mix_1_14_compile_warnings.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, MixWarningsAsErrorsReportsTheFailure)
{
  auto got = parse_elixir_output(sample("mix_1_14_warnings_as_errors.txt"), kCapture);
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(got[2], warn("lib/b.ex", 2, 0, kUnusedZ));
  EXPECT_EQ(got.back(),
            err("", 0, 0,
                "Compilation failed due to warnings while using the --warnings-as-errors option"));
}

TEST(ElixirDiagnostics, MixCompileErrors)
{
  Diagnostics warnings{
      warn("lib/a.ex", 3, 0, kUnusedX),
      warn("lib/b.ex", 2, 0, kUnusedZ),
      warn("lib/a.ex", 7, 0, kUnusedY),
      warn("lib/a.ex", 9, 0, "function unused_priv/0 is unused"),
  };
  auto expected = warnings;
  expected.push_back(err("lib/undefined.ex", 3, 0, kUndefFoo));
  EXPECT_EQ(parse_elixir_output(sample("mix_1_14_compile_error.txt"), kCapture), expected);

  expected = warnings;
  expected.push_back(err("lib/raise.ex", 3, 0, "** (RuntimeError) boom"));
  EXPECT_EQ(parse_elixir_output(sample("mix_1_14_raise_in_module_body.txt"), kCapture), expected);

  EXPECT_EQ(parse_elixir_output(sample("mix_1_14_erlang_error.txt"), kCapture),
            (Diagnostics{
                err("src/bad.erl", 3, 12, "syntax error before: '.'"),
                warn("src/warn.erl", 4, 5, "variable 'X' is unused"),
                err("src/bad.erl", 2, 2, "function f/0 undefined"),
                warn("src/warn.erl", 6, 1, "function g/0 is unused"),
            }));

  auto task = parse_elixir_output(sample("mix_1_14_task_not_found.txt"), kCapture);
  ASSERT_EQ(task.size(), 8u);
  EXPECT_EQ(task.back(), err("", 0, 0, "The task \"nonexistent_task\" could not be found"));
}

// --- Elixir 1.15 to 1.18, recorded upstream ----------------------------------------

TEST(ElixirDiagnostics, Elixir115ErrorsAndTheLoggedSummaryIsDropped)
{
  EXPECT_EQ(
      parse_elixir_output(sample("elixir_1_15_changelog.txt"), kCapture),
      Diagnostics{err("my_file.exs", 1, 0, "undefined function foo/0 (there is no such import)")});
  EXPECT_EQ(parse_elixir_output(sample("elixir_1_15_mix_error_and_warning.txt"), kCapture),
            (Diagnostics{
                err("lib/theme_scanner/http.ex", 12, 0, "undefined variable \"url\""),
                warn("lib/theme_scanner/http.ex", 99, 0,
                     "variable \"tag\" is unused (if the variable is not meant to be used, prefix "
                     "it with an underscore)"),
            }));
}

TEST(ElixirDiagnostics, Elixir116ChangelogExamples)
{
  Diagnostics expected{
      err("lib/my_app.ex", 1, 17, "syntax error before: '*'"),
      err("lib/my_app.ex", 1, 18, "unexpected token: )"),
      err("lib/my_app", 8, 23, "missing terminator: )"),
      err("lib/sample.ex", 5, 9, "undefined variable \"unknown_var\""),
      err("lib/sample.ex", 3, 0,
          "function names should start with lowercase characters or underscore, invalid name "
          "CamelCase"),
  };
  EXPECT_EQ(parse_elixir_output(sample("elixir_1_16_changelog.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, Elixir116BoxedDiagnostics)
{
  const std::string unknown_b =
      "Unknown.b/0 is undefined (module Unknown is not available or is yet to be defined)";
  const std::string unknown_bar0 =
      "Unknown.bar/0 is undefined (module Unknown is not available or is yet to be defined)";
  Diagnostics expected{
      warn("lib/sample.ex", 3, 23, unknown_b),
      warn("lib/sample.ex", 3, 0, unknown_b),
      warn("nofile", 2, 23, unknown_b),
      warn("lib/io_warn.ex", 1, 4, "oops\nmulti\nline"),
      warn("lib/sample.ex", 5, 53,
           "Unknown.bar/1 is undefined (module Unknown is not available or is yet to be defined)"),
      warn("nofile", 3, 13, unknown_bar0),
      warn("nofile", 4, 13, unknown_bar0),
      warn("nofile", 5, 13, unknown_bar0),
      warn("nofile", 6, 13, unknown_bar0),
      warn("lib/sample.ex", 5, 13, unknown_bar0),
      warn("lib/sample.ex", 6, 13, unknown_bar0),
      warn("lib/sample.ex", 7, 13, unknown_bar0),
      warn("lib/sample.ex", 8, 13, unknown_bar0),
      err("lib/sample.ex", 3, 0,
          "function names should start with lowercase characters or underscore, invalid name "
          "CamelCase"),
      err("lib/sample.ex", 5, 15,
          "undefined function unknown_func_call!/1 (expected Sample to define such a function or "
          "for it to be imported, but none are available)"),
      err("nofile", 2, 16,
          "undefined function module_info/0 (this function is auto-generated by the compiler and "
          "must always be called as a remote, as in __MODULE__.module_info/0)"),
      warn("nofile", 2, 3, "unused alias List"),
      // "** (TokenMissingError) token missing on nofile:1:4:" and its box are one error.
      err("nofile", 1, 4, "syntax error: expression is incomplete"),
      err("nofile", 4, 20, "missing terminator: \"\"\" (for heredoc starting at line 1)"),
      err("nofile", 403, 5, "unexpected token: )"),
  };
  EXPECT_EQ(parse_elixir_output(sample("elixir_1_16_diagnostics_test.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, Elixir116MixCompileError)
{
  EXPECT_EQ(parse_elixir_output(sample("elixir_1_16_mix_compile_error.txt"), kCapture),
            Diagnostics{err("lib/sample.ex", 5, 13, "undefined variable \"bar\"")});
}

TEST(ElixirDiagnostics, Elixir116ProjectOutput)
{
  Diagnostics expected{
      warn("test/support/conn_case.ex", 42, 30,
           "Portfolio.TestComponents.ensure_essential_components_registered/0 is undefined (module "
           "Portfolio.TestComponents is not available or is yet to be defined)"),
      warn(
          "lib/portfolio_web/live/kitchen_sink_live.ex", 176, 34,
          "variable \"name\" is unused (if the variable is not meant to be used, prefix it with an "
          "underscore)"),
      warn("lib/portfolio_web/components/portfolio_items_list.ex", 7, 3,
           "unused import PortfolioWeb.Gettext"),
      warn("lib/portfolio/content/markdown/renderer.ex", 216, 0,
           "module attribute @doc was set but no definition follows it"),
      warn(
          "lib/portfolio_web/plugs/locale_redirection.ex", 90, 13,
          "variable \"conn\" is unused (there is a variable with the same name in the context, use "
          "the pin operator (^) to match on it or prefix this variable with underscore if it is "
          "not meant to be used)"),
      warn("lib/portfolio_web/live/case_study_live/index.ex", 11, 0,
           "got \"@impl true\" for function on_mount/4 but no behaviour specifies such callback. "
           "The known callbacks are:\n\n"
           "  * Phoenix.LiveView.handle_async/3 (function)\n"
           "  * Phoenix.LiveView.handle_call/3 (function)\n"
           "  * Phoenix.LiveView.handle_cast/2 (function)\n"
           "  * Phoenix.LiveView.handle_event/3 (function)\n"
           "  * Phoenix.LiveView.handle_info/2 (function)\n"
           "  * Phoenix.LiveView.handle_params/3 (function)\n"
           "  * Phoenix.LiveView.mount/3 (function)\n"
           "  * Phoenix.LiveView.render/1 (function)\n"
           "  * Phoenix.LiveView.terminate/2 (function)"),
      warn("lib/portfolio_web/components/typography.ex", 73, 3, "unused alias Safe"),
  };
  EXPECT_EQ(parse_elixir_output(sample("elixir_1_16_mix_compile_project.txt"), kCapture), expected);
}

TEST(ElixirDiagnostics, Elixir118TypingViolationKeepsItsMultiLineMessage)
{
  EXPECT_EQ(parse_elixir_output(sample("elixir_1_18_typing_violation.txt"), kCapture),
            Diagnostics{warn("a.ex", 2, 18,
                             "incompatible types given as default arguments to ok/1:\n\n"
                             "    -nil-\n\n"
                             "but expected one of:\n\n"
                             "    dynamic(:ok)\n\n"
                             "typing violation found at:")});
}

// --- Elixir, synthetic edge cases ---------------------------------------------------

TEST(ElixirDiagnostics, Elixir115ColumnsAndAppPrefixedLocations)
{
  EXPECT_EQ(parse_elixir_output("warning: unused alias Foo\n  lib/a.ex:2:3\n\n"
                                "error: undefined variable \"x\"\n"
                                "  (my_app 0.1.0) lib/a.ex:9:5: A.f/0\n\n",
                                kCapture),
            (Diagnostics{warn("lib/a.ex", 2, 3, "unused alias Foo"),
                         err("lib/a.ex", 9, 5, "undefined variable \"x\"")}));
}

TEST(ElixirDiagnostics, WarningWithoutLocationIsKeptUnplaced)
{
  EXPECT_EQ(parse_elixir_output("warning: something odd\n\nCompiling 2 files (.ex)\n", kCapture),
            Diagnostics{warn("", 0, 0, "something odd")});
  EXPECT_EQ(parse_elixir_output("warning: at the end\n", kCapture),
            Diagnostics{warn("", 0, 0, "at the end")});
}

TEST(ElixirDiagnostics, LoggedSummaryIsKeptWhenNoErrorWasReportedForTheFile)
{
  EXPECT_EQ(
      parse_elixir_output("** (CompileError) lib/a.ex: cannot compile module A (errors have "
                          "been logged)\n",
                          kCapture),
      Diagnostics{err("lib/a.ex", 0, 0, "cannot compile module A (errors have been logged)")});
}

TEST(ElixirDiagnostics, RaisePrefersAFrameInTheFileBeingCompiled)
{
  std::string output = "== Compilation error in file lib/a.ex ==\n"
                       "** (ArgumentError) bad\n"
                       "    (elixir 1.16.0) lib/kernel.ex:1: Kernel.f/1\n"
                       "    lib/b.ex:5: B.mac/1\n"
                       "    lib/a.ex:3: (module)\n";
  EXPECT_EQ(parse_elixir_output(output, kCapture),
            Diagnostics{err("lib/a.ex", 3, 0, "** (ArgumentError) bad")});
  // No user frame at all: the file from mix's header, line unknown.
  EXPECT_EQ(parse_elixir_output("== Compilation error in file lib/a.ex ==\n** (ErlangError) "
                                "oops\n    (stdlib 4.2) erl_eval.erl:744: :erl_eval.do_apply/7\n",
                                kCapture),
            Diagnostics{err("lib/a.ex", 0, 0, "** (ErlangError) oops")});
}

TEST(ElixirDiagnostics, MultiLineExceptionMessageBeforeTheTrace)
{
  std::string output = "** (FunctionClauseError) no function clause matching in A.f/1\n\n"
                       "    The following arguments were given to A.f/1:\n\n"
                       "        # 1\n        :x\n\n"
                       "    lib/a.ex:2: A.f/1\n    lib/a.ex:5: (module)\n";
  EXPECT_EQ(parse_elixir_output(output, kCapture),
            Diagnostics{err("lib/a.ex", 2, 0,
                            "** (FunctionClauseError) no function clause matching in A.f/1")});
}

TEST(ElixirDiagnostics, SyntaxErrorHeaderWithoutBoxStillReports)
{
  EXPECT_EQ(parse_elixir_output("** (SyntaxError) invalid syntax found on lib/a.ex:1:17:\nhi\n",
                                kCapture),
            Diagnostics{
                err("lib/a.ex", 1, 17, "** (SyntaxError) invalid syntax found on lib/a.ex:1:17")});
}

TEST(ElixirDiagnostics, MixErrorAfterAPromptOnTheSameLine)
{
  EXPECT_EQ(
      parse_elixir_output("Shall I install Hex? [Yn] ** (Mix) Could not find an SCM for "
                          "dependency :nope from X.MixProject\n",
                          kCapture),
      Diagnostics{err("", 0, 0, "Could not find an SCM for dependency :nope from X.MixProject")});
}

TEST(ElixirDiagnostics, OldOneLineFormatAndCrLf)
{
  EXPECT_EQ(parse_elixir_output("lib/a.ex:3: warning: variable x is unused\r\n", kCapture),
            Diagnostics{warn("lib/a.ex", 3, 0, "variable x is unused")});
  EXPECT_EQ(parse_elixir_output("warning: w\r\n  lib/a.ex:3: A.f/0\r\n\r\n", kCapture),
            Diagnostics{warn("lib/a.ex", 3, 0, "w")});
}

TEST(ElixirDiagnostics, ProgramOutputIsNotADiagnostic)
{
  EXPECT_TRUE(parse_elixir_output("hi\n12:43:26.167 [info] GET /\n    (elixir) x\nsee note: 3\n"
                                  "  3 |     baz(1, )\n",
                                  kCapture)
                  .empty());
}

// --- erlc ---------------------------------------------------------------------------

TEST(ErlcDiagnostics, CapturedSamples)
{
  EXPECT_EQ(parse_erlc_output(sample("erlc_otp25_warnings.txt"), kCapture),
            (Diagnostics{warn("src/warn.erl", 4, 5, "variable 'X' is unused"),
                         warn("src/warn.erl", 6, 1, "function g/0 is unused")}));
  Diagnostics errors{err("src/bad.erl", 3, 12, "syntax error before: '.'"),
                     err("src/bad.erl", 2, 2, "function f/0 undefined")};
  EXPECT_EQ(parse_erlc_output(sample("erlc_otp25_errors.txt"), kCapture), errors);
  EXPECT_EQ(parse_erlc_output(sample("erlc_otp25_absolute_paths.txt"), kCapture), errors);
  EXPECT_EQ(parse_erlc_output(sample("erlc_otp25_line_only.txt"), kCapture),
            (Diagnostics{warn("src/warn.erl", 4, 0, "variable 'X' is unused"),
                         warn("src/warn.erl", 6, 0, "function g/0 is unused"),
                         err("src/bad.erl", 3, 0, "syntax error before: '.'"),
                         err("src/bad.erl", 2, 0, "function f/0 undefined")}));
  // With +warnings_as_errors the messages lose "Warning: " and are errors.
  EXPECT_EQ(parse_erlc_output(sample("erlc_otp25_warnings_as_errors.txt"), kCapture),
            (Diagnostics{err("src/warn.erl", 4, 5, "variable 'X' is unused"),
                         err("src/warn.erl", 6, 1, "function g/0 is unused")}));
  EXPECT_EQ(parse_erlc_output(sample("erlc_otp25_no_such_file.txt"), kCapture),
            Diagnostics{err("src/nonexistent.erl", 0, 0, "no such file or directory")});
}

TEST(ErlcDiagnostics, UnparsableLinesAreSkipped)
{
  EXPECT_TRUE(parse_erlc_output("compile: warnings being treated as errors\n%    3| f() -> foo(.\n"
                                "   indented.erl:3: no\nplain text\n",
                                kCapture)
                  .empty());
}

// --- paths --------------------------------------------------------------------------

TEST(DiagnosticPaths, SandboxRelative)
{
  PathContext ctx{"/tmp/sb", {"/sandbox", "/mnt/src/"}};
  EXPECT_EQ(sandbox_relative_path("lib/a.ex", ctx), "lib/a.ex");
  EXPECT_EQ(sandbox_relative_path("./lib/../lib/a.ex", ctx), "lib/a.ex");
  EXPECT_EQ(sandbox_relative_path("/tmp/sb/lib/a.ex", ctx), "lib/a.ex");
  EXPECT_EQ(sandbox_relative_path("/sandbox/lib/a.ex", ctx), "lib/a.ex");
  EXPECT_EQ(sandbox_relative_path("/mnt/src/src/x.erl", ctx), "src/x.erl");
  EXPECT_EQ(sandbox_relative_path("nofile", ctx), "nofile");
  EXPECT_EQ(sandbox_relative_path("", ctx), "");
}

TEST(DiagnosticPaths, OutsideStaysAbsolute)
{
  PathContext ctx{"/tmp/sb/", {"/sandbox"}};
  EXPECT_EQ(sandbox_relative_path("/usr/lib/elixir/lib/kernel.ex", ctx),
            "/usr/lib/elixir/lib/kernel.ex");
  // Components are compared, not string prefixes.
  EXPECT_EQ(sandbox_relative_path("/sandboxes/lib/a.ex", ctx), "/sandboxes/lib/a.ex");
  EXPECT_EQ(sandbox_relative_path("/tmp/sb-evil/a.ex", ctx), "/tmp/sb-evil/a.ex");
  // ".." is resolved before deciding, and the result says where it really points.
  EXPECT_EQ(sandbox_relative_path("/sandbox/../etc/passwd", ctx), "/etc/passwd");
  EXPECT_EQ(sandbox_relative_path("/tmp/sb/lib/../../x.ex", ctx), "/tmp/x.ex");
  EXPECT_EQ(sandbox_relative_path("../../etc/passwd", ctx), "/etc/passwd");
}

TEST(DiagnosticPaths, AppliedToParsedDiagnostics)
{
  PathContext ctx{"/tmp/sb", {"/sandbox"}};
  auto got = parse_elixir_output("warning: w\n  /sandbox/lib/a.ex:1\n  /sandbox/../etc/passwd:2\n"
                                 "  /tmp/sb/lib/b.ex:3\n",
                                 ctx);
  EXPECT_EQ(got, (Diagnostics{warn("lib/a.ex", 1, 0, "w"), warn("/etc/passwd", 2, 0, "w"),
                              warn("lib/b.ex", 3, 0, "w")}));
  EXPECT_EQ(parse_erlc_output("/sandbox/src/a.erl:1:2: oops\n", ctx),
            Diagnostics{err("src/a.erl", 1, 2, "oops")});
}

// --- hostile input --------------------------------------------------------------------

TEST(DiagnosticAnsi, StripsEscapeSequences)
{
  EXPECT_EQ(strip_ansi("\x1b[33mwarning: \x1b[0mx\x1b[1;31m!\x1b[K\x1b"), "warning: x!");
  EXPECT_EQ(
      parse_elixir_output("\x1b[31m** (CompileError) \x1b[0mlib/\x1b[1ma.ex:3: boom\n", kCapture),
      Diagnostics{err("lib/a.ex", 3, 0, "boom")});
  EXPECT_EQ(parse_erlc_output("\x1b[1msrc/a.erl:1:2: \x1b[35mWarning: \x1b[0mw\n", kCapture),
            Diagnostics{warn("src/a.erl", 1, 2, "w")});
}

template <typename F> double seconds(F&& f)
{
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Generous bound: the point is linear time, also under sanitizers.
constexpr double kQuick = 3.0;
constexpr std::size_t kMiB = 1 << 20;

std::string repeat(std::string_view piece, std::size_t bytes)
{
  std::string out;
  while (out.size() < bytes)
    out.append(piece);
  return out;
}

TEST(DiagnosticHostile, GarbageReturnsQuickly)
{
  std::mt19937 rng(42);
  std::string random(kMiB, '\0');
  for (char& c : random)
    c = static_cast<char>(rng());
  std::vector<std::string> inputs{
      random,
      std::string(kMiB, 'a'),
      repeat("lib/a.ex:", kMiB),
      repeat("a.ex:1:", kMiB),
      repeat(":1", kMiB),
      repeat("\x1b[", kMiB),
      repeat("** (", kMiB),
      "warning: " + repeat("x", kMiB),
      repeat("warning: w\n", kMiB),
      repeat("warning: w\n  ", kMiB),
      repeat("** (RuntimeError) x\n    (a) b\n", kMiB),
      repeat("** (SyntaxError) x on a.ex:1:1:\n", kMiB),
      "** (RuntimeError) x\n" + repeat("\n", kMiB),
      "    error: e\n" + repeat("    \u2502\n", kMiB / 8),
      repeat("\u2514\u2500 ", kMiB),
      repeat(std::string(kMiB / 4, ' ') + "\n", kMiB),
  };
  for (const auto& input : inputs) {
    Diagnostics elixir;
    Diagnostics erlc;
    double took = seconds([&] {
      elixir = parse_elixir_output(input, kCapture);
      erlc = parse_erlc_output(input, kCapture);
    });
    EXPECT_LT(took, kQuick) << input.substr(0, 40);
    EXPECT_LE(elixir.size(), kMaxDiagnostics);
    EXPECT_LE(erlc.size(), kMaxDiagnostics);
    for (const auto& d : elixir)
      EXPECT_LE(d.message.size(), kMaxMessageBytes);
  }
}

TEST(DiagnosticHostile, HugeMessageIsCut)
{
  auto got =
      parse_elixir_output("warning: " + std::string(kMiB, 'x') + "\n  lib/a.ex:1\n", kCapture);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.size(), kMaxMessageBytes);
  EXPECT_EQ(got[0].file, "lib/a.ex");
}

TEST(DiagnosticHostile, CappedAtOneThousand)
{
  auto elixir = parse_elixir_output(repeat("warning: w\n  lib/a.ex:1\n\n", 5000 * 24), kCapture);
  EXPECT_EQ(elixir.size(), kMaxDiagnostics);
  auto group = parse_elixir_output("warning: w\n" + repeat("  lib/a.ex:1\n", 5000 * 13), kCapture);
  EXPECT_EQ(group.size(), kMaxDiagnostics);
  auto erlc = parse_erlc_output(repeat("a.erl:1:1: e\n", 5000 * 13), kCapture);
  EXPECT_EQ(erlc.size(), kMaxDiagnostics);
}

} // namespace
} // namespace sandbox::backends
