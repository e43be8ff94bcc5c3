// Incremental compilation and the compile cache, end to end through
// build/sandbox: scripted edits on a real library checked against a clean
// build (same modules, same beam_lib:md5) and against what `mix compile`
// recompiles for the same edit; tampered cache files; concurrent compiles;
// a randomized sequence of edits.

#include "support.h"

#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

namespace sandbox::test {

namespace {

using nlohmann::json;

class Incremental : public SandboxTest {
protected:
  // Given to every compile (a --toolchain); empty: the system's.
  std::vector<std::string> m_toolchain;

  RunResult incremental(const fs::path& path, std::vector<std::string> args = {}) const
  {
    std::vector<std::string> argv = {"incremental", path.string(), "--compiler", "elixirc"};
    argv.insert(argv.end(), m_toolchain.begin(), m_toolchain.end());
    argv.insert(argv.end(), args.begin(), args.end());
    argv.emplace_back("--json");
    return sandbox(argv);
  }

  // A clean full compile of a copy of `sandbox` at a fixed path.
  std::map<std::string, std::string> clean_build(const fs::path& sandbox_path) const
  {
    auto copy = scratch() / "clean";
    std::error_code ec;
    fs::remove_all(copy, ec);
    fs::copy(sandbox_path, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::remove_all(copy / ".sandbox_cache", ec);
    std::vector<std::string> args = {"--compiler", "elixirc"};
    args.insert(args.end(), m_toolchain.begin(), m_toolchain.end());
    auto run = compile(copy, args);
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    auto digests = beam_md5s(result_ebin(run.json()));
    EXPECT_FALSE(digests.empty()) << "no BEAM digests read from the clean build";
    return digests;
  }

  static std::set<std::string> strings(const json& array)
  {
    std::set<std::string> out;
    for (const auto& item : array) out.insert(item.get<std::string>());
    return out;
  }

  static void append(const fs::path& file, const std::string& text)
  {
    std::ofstream(file, std::ios::app) << text;
  }

  static void replace(const fs::path& file, const std::string& from, const std::string& to)
  {
    auto text = read_text(file);
    auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << file;
    text.replace(at, from.size(), to);
    std::ofstream(file, std::ios::trunc) << text;
  }

  // Scripted edits of nimble_options, each checked against a clean build and
  // against what `mix compile` of `elixir_bin` recompiles.
  void edit_scripts_match_clean_build_and_mix(const fs::path& elixir_bin);
};

// `mix compile --verbose` on a copy, as the oracle of what Mix recompiles.
class MixOracle {
public:
  // `elixir_bin`: the directory of the mix to run; empty: the one in PATH.
  MixOracle(const fs::path& source, const fs::path& where, fs::path elixir_bin = {})
    : m_dir(where / "mix_copy"), m_build(where / "mix_build"), m_bin(std::move(elixir_bin))
  {
    fs::copy(source, m_dir, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    (void)compile();
  }
  [[nodiscard]] const fs::path& dir() const { return m_dir; }
  std::set<std::string> compile() const
  {
    RunOptions options;
    options.cwd = m_dir;
    options.env = {{"MIX_BUILD_PATH", m_build.string()}, {"MIX_ENV", "dev"}};
    if (!m_bin.empty()) {
      const char* path = std::getenv("PATH");
      options.env["PATH"] = m_bin.string() + ":" + (path != nullptr ? path : "/usr/bin:/bin");
    }
    auto run = run_process({m_bin.empty() ? std::string("mix") : (m_bin / "mix").string(), "compile",
                            "--verbose"},
                           options);
    std::set<std::string> out;
    std::regex line("Compiled (\\S+\\.ex)");
    auto text = run.out + run.err;
    for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it) {
      out.insert((*it)[1]);
    }
    return out;
  }

private:
  fs::path m_dir;
  fs::path m_build;
  fs::path m_bin;
};

struct Edit {
  std::string name;
  std::function<void(const fs::path&)> apply;
};

TEST_F(Incremental, EditScriptsOnNimbleOptionsMatchCleanBuildAndNeverExceedMix)
{
  SKIP_WITHOUT_CORPORA();
  edit_scripts_match_clean_build_and_mix({});
}

// The same scripts with Elixir 1.18's compiler, tracer and Mix.
TEST_F(Incremental, EditScriptsHoldTheirInvariantUnderElixir118)
{
  SKIP_WITHOUT_CORPORA();
  SKIP_WITHOUT_ELIXIR_1_18();
  m_toolchain = {"--toolchain", elixir_1_18()->string()};
  edit_scripts_match_clean_build_and_mix(*elixir_1_18() / "bin");
}

void Incremental::edit_scripts_match_clean_build_and_mix(const fs::path& elixir_bin)
{
  auto sandbox_path = copy_corpus("nimble_options");
  MixOracle mix(sandbox_path, scratch(), elixir_bin);
  auto first = incremental(sandbox_path);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  if (!m_toolchain.empty()) {
    EXPECT_EQ(first.json()["toolchain"]["elixir"], "1.18.4");
  }
  EXPECT_EQ(first.json()["compilation_strategy"], "full");
  auto hit = incremental(sandbox_path);
  ASSERT_EQ(hit.exit_code, 0) << hit.describe();
  EXPECT_EQ(hit.json()["compilation_strategy"], "cache_hit");
  EXPECT_TRUE(hit.json()["cache_hit"].get<bool>());
  EXPECT_EQ(beam_md5s(result_ebin(hit.json())), beam_md5s(result_ebin(first.json())));

  std::vector<Edit> edits = {
    {"leaf edit", [](const fs::path& d) {
       replace(d / "lib/nimble_options/validation_error.ex", "defexception", "defexception");
       append(d / "lib/nimble_options/validation_error.ex", "\ndefmodule NimbleOptions.Extra do\n  def x, do: 1\nend\n");
     }},
    {"comment-only edit of a core module", [](const fs::path& d) {
       append(d / "lib/nimble_options.ex", "\n# a comment\n");
     }},
    {"API change", [](const fs::path& d) {
       append(d / "lib/nimble_options/validation_error.ex", "\ndefmodule NimbleOptions.Extra2 do\n  def y(a), do: a\nend\n");
     }},
    {"add a file", [](const fs::path& d) {
       std::ofstream(d / "lib/nimble_options/added.ex") << "defmodule NimbleOptions.Added do\n  def z, do: NimbleOptions.Extra.x()\nend\n";
     }},
    {"rename a file", [](const fs::path& d) {
       fs::rename(d / "lib/nimble_options/added.ex", d / "lib/nimble_options/renamed.ex");
     }},
    {"delete a file", [](const fs::path& d) { fs::remove(d / "lib/nimble_options/renamed.ex"); }},
  };
  for (const auto& edit : edits) {
    SCOPED_TRACE(edit.name);
    edit.apply(sandbox_path);
    edit.apply(mix.dir());
    auto mix_compiled = mix.compile();
    auto run = incremental(sandbox_path);
    ASSERT_EQ(run.exit_code, 0) << run.describe();
    auto result = run.json();
    EXPECT_EQ(result["compilation_strategy"], "incremental") << result["cache_warnings"];
    auto ours = strings(result["changed_files"]);
    for (const auto& file : ours) {
      EXPECT_TRUE(mix_compiled.contains(file)) << file << " recompiled, Mix did not";
    }
    EXPECT_EQ(beam_md5s(result_ebin(result)), clean_build(sandbox_path));
  }
}

TEST_F(Incremental, CommentOnlyEditOfAMacroModuleRecompilesFewerFilesThanMix)
{
  auto sandbox_path = make_sandbox("macros", {
    {"mix.exs", "defmodule M.MixProject do\n  use Mix.Project\n  def project, do: [app: :m, version: \"0.1.0\"]\nend\n"},
    {"lib/m/macros.ex", "defmodule M.Macros do\n  defmacro double(x), do: quote(do: unquote(x) * 2)\nend\n"},
    {"lib/m/a.ex", "defmodule M.A do\n  require M.Macros\n  def a, do: M.Macros.double(1)\nend\n"},
    {"lib/m/b.ex", "defmodule M.B do\n  import M.Macros\n  def b, do: double(2)\nend\n"},
    {"lib/m/c.ex", "defmodule M.C do\n  def c, do: M.A.a()\nend\n"},
  });
  MixOracle mix(sandbox_path, scratch());
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  for (const auto& dir : {sandbox_path, mix.dir()}) {
    replace(dir / "lib/m/macros.ex", "defmacro", "# doubles\n  defmacro");
  }
  auto mix_compiled = mix.compile();
  auto run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto ours = strings(run.json()["changed_files"]);
  EXPECT_EQ(ours, std::set<std::string>{"lib/m/macros.ex"});
  EXPECT_EQ(mix_compiled, (std::set<std::string>{"lib/m/macros.ex", "lib/m/a.ex", "lib/m/b.ex"}));
  EXPECT_EQ(beam_md5s(result_ebin(run.json())), clean_build(sandbox_path));
  // A real change of the macro does reach its users.
  for (const auto& dir : {sandbox_path, mix.dir()}) {
    replace(dir / "lib/m/macros.ex", "* 2", "* 3");
  }
  mix_compiled = mix.compile();
  run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  ours = strings(run.json()["changed_files"]);
  EXPECT_EQ(ours, mix_compiled);
  EXPECT_EQ(beam_md5s(result_ebin(run.json())), clean_build(sandbox_path));
}

TEST_F(Incremental, MixProjectPartialCompileMatchesACleanMixBuild)
{
  SKIP_WITHOUT_CORPORA();
  auto sandbox_path = copy_corpus("nimble_options");
  auto mix_incremental = [&] {
    return sandbox({"incremental", sandbox_path.string(), "--compiler", "mix", "--json"});
  };
  ASSERT_EQ(mix_incremental().exit_code, 0);
  replace(sandbox_path / "lib/nimble_options/validation_error.ex", "\" (in options", "\" (in the options");
  auto run = mix_incremental();
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  EXPECT_EQ(result["compilation_strategy"], "incremental") << result["cache_warnings"];
  EXPECT_EQ(strings(result["changed_files"]), std::set<std::string>{"lib/nimble_options/validation_error.ex"});
  EXPECT_FALSE(result["app_file"].is_null());
  auto copy = scratch() / "clean_mix";
  fs::copy(sandbox_path, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::remove_all(copy / ".sandbox_cache");
  auto clean = compile(copy, {"--compiler", "mix"});
  ASSERT_EQ(clean.exit_code, 0) << clean.describe();
  auto expected = beam_md5s(result_ebin(clean.json()));
  EXPECT_FALSE(expected.empty());
  EXPECT_EQ(beam_md5s(result_ebin(result)), expected);
}

TEST_F(Incremental, FileReadAtCompileTimeIsAnInput)
{
  auto sandbox_path = make_sandbox("reads", {
    {"lib/a.ex", "defmodule A do\n  @external_resource \"data.txt\"\n  @data File.read!(\"data.txt\")\n  def data, do: @data\nend\n"},
    {"lib/b.ex", "defmodule B do\n  def b, do: 1\nend\n"},
    {"data.txt", "one"},
  });
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  std::ofstream(sandbox_path / "data.txt", std::ios::trunc) << "two";
  auto run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(strings(run.json()["changed_files"]), std::set<std::string>{"lib/a.ex"});
  EXPECT_EQ(beam_md5s(result_ebin(run.json())), clean_build(sandbox_path));
}

TEST_F(Incremental, CompileConnectedDependentIsRecompiled)
{
  // A's body calls B at compile time; B calls C at run time: editing C
  // changes what A's compile computes.
  auto sandbox_path = make_sandbox("connected", {
    {"lib/a.ex", "defmodule A do\n  @v B.value()\n  def v, do: @v\nend\n"},
    {"lib/b.ex", "defmodule B do\n  def value, do: C.value() + 1\nend\n"},
    {"lib/c.ex", "defmodule C do\n  def value, do: 1\nend\n"},
    {"lib/d.ex", "defmodule D do\n  def d, do: C.value()\nend\n"},
  });
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  replace(sandbox_path / "lib/c.ex", "do: 1", "do: 41");
  auto run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto compiled = strings(run.json()["changed_files"]);
  EXPECT_TRUE(compiled.contains("lib/a.ex"));
  EXPECT_TRUE(compiled.contains("lib/c.ex"));
  EXPECT_FALSE(compiled.contains("lib/d.ex")); // runtime only
  EXPECT_EQ(strings(run.json()["original_changed_files"]), std::set<std::string>{"lib/c.ex"});
  EXPECT_EQ(beam_md5s(result_ebin(run.json())), clean_build(sandbox_path));
}

// A crash after the graph and hashes of a compile were written but before its
// last_compilation.json: the previous compile's state is still whole, so the
// next compile is partial, not full.
TEST_F(Incremental, InterruptedCacheWriteKeepsThePreviousState)
{
  auto sandbox_path = make_sandbox("interrupted", {{"lib/a.ex", "defmodule A do\n  def a, do: 1\nend\n"},
                                                   {"lib/b.ex", "defmodule B do\n  def b, do: 2\nend\n"}});
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  auto cache = sandbox_path / ".sandbox_cache";
  auto committed = read_text(cache / "last_compilation.json");
  append(sandbox_path / "lib/a.ex", "defmodule A2 do\nend\n");
  auto second = incremental(sandbox_path);
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  ASSERT_EQ(second.json()["compilation_strategy"], "incremental");
  // The second compile's last_compilation.json never landed.
  std::ofstream(cache / "last_compilation.json", std::ios::trunc) << committed;
  auto third = incremental(sandbox_path);
  ASSERT_EQ(third.exit_code, 0) << third.describe();
  auto result = third.json();
  EXPECT_EQ(result["compilation_strategy"], "incremental") << result["cache_warnings"].dump();
  EXPECT_EQ(strings(result["changed_files"]), std::set<std::string>{"lib/a.ex"});
  EXPECT_EQ(beam_md5s(result_ebin(result)), clean_build(sandbox_path));
}

// File names are bytes, not always UTF-8: such a name is cached like any
// other (escaped in the cache files), and an edit of that file reaches the
// module that reads it.
TEST_F(Incremental, FileNameThatIsNotUtf8IsCachedAndItsEditIsSeen)
{
  const std::string data = "data/caf\xe9.txt"; // Latin-1 e-acute: not UTF-8
  auto sandbox_path = make_sandbox("latin1", {
    {"lib/a.ex", "defmodule A do\n  @data File.read!(\"data/caf\\xE9.txt\")\n  def data, do: @data\nend\n"},
    {"lib/b.ex", "defmodule B do\n  def b, do: 1\nend\n"},
    {data, "one"},
  });
  auto first = incremental(sandbox_path);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  EXPECT_EQ(first.json()["cache_warnings"], json::array());
  auto hit = incremental(sandbox_path);
  ASSERT_EQ(hit.exit_code, 0) << hit.describe();
  EXPECT_EQ(hit.json()["compilation_strategy"], "cache_hit") << hit.json()["cache_warnings"];
  EXPECT_EQ(hit.json()["cache_warnings"], json::array());
  // Valid names are keys as they are; this one is NUL-marked and escaped.
  auto hashes = read_text(sandbox_path / ".sandbox_cache" / "file_hashes.json");
  EXPECT_NE(hashes.find("\"lib/a.ex\""), std::string::npos);
  EXPECT_NE(hashes.find("\"\\u0000data/caf\\\\xe9.txt\""), std::string::npos) << hashes;

  std::ofstream(sandbox_path / data, std::ios::trunc) << "two";
  auto run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  EXPECT_EQ(result["compilation_strategy"], "incremental") << result["cache_warnings"];
  EXPECT_EQ(result["cache_warnings"], json::array());
  EXPECT_EQ(strings(result["changed_files"]), std::set<std::string>{"lib/a.ex"});
  // Results are JSON text: there the byte that is not UTF-8 reads U+FFFD.
  EXPECT_EQ(strings(result["original_changed_files"]), std::set<std::string>{"data/caf\xef\xbf\xbd.txt"});
  auto value = run_elixir(result_ebin(result), "IO.write(A.data())");
  EXPECT_EQ(value.out, "two") << value.describe();
  EXPECT_EQ(beam_md5s(result_ebin(result)), clean_build(sandbox_path));
  auto again = incremental(sandbox_path);
  ASSERT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_TRUE(again.json()["cache_hit"].get<bool>()) << again.json()["cache_warnings"];
}

TEST_F(Incremental, TamperedCacheFilesAreMissesWithAWarning)
{
  auto sandbox_path = make_sandbox("tamper", {{"lib/a.ex", "defmodule A do\n  def a, do: 1\nend\n"}});
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  auto cache = sandbox_path / ".sandbox_cache";
  ASSERT_TRUE(fs::exists(cache / "last_compilation.json"));
  auto original = read_text(cache / "last_compilation.json");
  auto victim = scratch() / "victim";
  fs::create_directories(victim);
  std::ofstream(victim / "keep") << "x";
  std::vector<std::pair<std::string, std::function<void()>>> attacks = {
    {"edited", [&] {
       auto text = original;
       text.replace(text.find("\"status\""), 8, "\"STATUS\"");
       std::ofstream(cache / "last_compilation.json", std::ios::trunc) << text;
     }},
    {"truncated", [&] { std::ofstream(cache / "last_compilation.json", std::ios::trunc) << original.substr(0, 40); }},
    {"garbage", [&] { std::ofstream(cache / "last_compilation.json", std::ios::trunc) << "\x01\x02garbage"; }},
    {"planted", [&] {
       std::ofstream(cache / "last_compilation.json", std::ios::trunc)
         << json{{"status", "ok"}, {"timestamp", 99999999999}, {"beam_files", {"/etc/passwd"}},
                 {"temp_dir", victim.string()}, {"hmac", std::string(64, '0')}, {"format", "sandbox-cache-v1"}}.dump();
     }},
    {"symlink", [&] {
       fs::remove(cache / "last_compilation.json");
       fs::create_symlink("/etc/passwd", cache / "last_compilation.json");
     }},
  };
  for (const auto& [name, attack] : attacks) {
    SCOPED_TRACE(name);
    attack();
    auto run = incremental(sandbox_path);
    ASSERT_EQ(run.exit_code, 0) << run.describe();
    auto result = run.json();
    EXPECT_FALSE(result["cache_hit"].get<bool>());
    EXPECT_EQ(result["compilation_strategy"], "full");
    EXPECT_FALSE(result["cache_warnings"].empty());
    for (const auto& beam : result["beam_files"]) {
      EXPECT_TRUE(beam.get<std::string>().starts_with(result["temp_dir"].get<std::string>()));
    }
    EXPECT_TRUE(fs::exists(victim / "keep"));
    // The next compile is a genuine hit again.
    auto again = incremental(sandbox_path);
    ASSERT_EQ(again.exit_code, 0);
    EXPECT_TRUE(again.json()["cache_hit"].get<bool>());
  }
  // A whole .sandbox_cache planted as a symlink is neither followed nor used.
  fs::remove_all(cache);
  fs::create_symlink(victim, cache);
  auto run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(fs::directory_iterator(victim)->path().filename(), "keep");
  EXPECT_FALSE(fs::exists(victim / "last_compilation.json"));
}

TEST_F(Incremental, FailedCompileIsNeverALaterCacheHit)
{
  auto sandbox_path = make_sandbox("fail", {{"lib/a.ex", "defmodule A do\n  def a, do: 1\nend\n"},
                                            {"lib/b.ex", "defmodule B do\n  def b, do: 2\nend\n"}});
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  std::ofstream(sandbox_path / "lib/b.ex", std::ios::trunc) << "defmodule B do\n  def b, do: \nend\n";
  EXPECT_EQ(incremental(sandbox_path).exit_code, 1);
  EXPECT_EQ(incremental(sandbox_path).exit_code, 1);
  std::ofstream(sandbox_path / "lib/b.ex", std::ios::trunc) << "defmodule B do\n  def b, do: 3\nend\n";
  auto run = incremental(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.json()["compilation_strategy"], "incremental");
  EXPECT_EQ(beam_md5s(result_ebin(run.json())), clean_build(sandbox_path));
  auto stats = sandbox({"cache", "stats", sandbox_path.string(), "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.describe();
  EXPECT_EQ(stats.json()["failed_compilations"], 2);
  EXPECT_EQ(stats.json()["total_compilations"], 2);
  EXPECT_EQ(sandbox({"cache", "clear", sandbox_path.string()}).exit_code, 0);
  EXPECT_FALSE(fs::exists(sandbox_path / ".sandbox_cache"));
}

TEST_F(Incremental, ConcurrentCompilesOfOneSandboxAreSerialised)
{
  auto sandbox_path = make_sandbox("concurrent", {{"lib/a.ex", "defmodule A do\n  def a, do: 1\nend\n"},
                                                  {"lib/b.ex", "defmodule B do\n  def b, do: A.a()\nend\n"}});
  std::vector<RunResult> results(3);
  std::vector<std::thread> threads;
  for (auto& r : results) {
    threads.emplace_back([&] { r = incremental(sandbox_path); });
  }
  for (auto& t : threads) t.join();
  int full = 0;
  for (auto& r : results) {
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    full += r.json()["compilation_strategy"] == "full" ? 1 : 0;
  }
  EXPECT_EQ(full, 1); // the others waited and found the first one's result
  auto run = incremental(sandbox_path);
  EXPECT_TRUE(run.json()["cache_hit"].get<bool>());
}

TEST_F(Incremental, RandomEditSequencesMatchACleanBuild)
{
  std::map<std::string, std::string> files = {
    {"lib/macros.ex", "defmodule P.Macros do\n  defmacro twice(x), do: quote(do: unquote(x) * P.Const.k())\nend\n"},
    {"lib/const.ex", "defmodule P.Const do\n  def k, do: 2\nend\n"},
    {"lib/shape.ex", "defmodule P.Shape do\n  defstruct [w: 1, h: 1]\nend\n"},
    {"lib/user.ex", "defmodule P.User do\n  require P.Macros\n  @t P.Macros.twice(3)\n  def t, do: @t\n  def s, do: %P.Shape{}\nend\n"},
    {"lib/leaf.ex", "defmodule P.Leaf do\n  def l, do: P.User.t() + 1\nend\n"},
  };
  auto sandbox_path = make_sandbox("random", files);
  ASSERT_EQ(incremental(sandbox_path).exit_code, 0);
  std::mt19937 rng(20261126);
  std::vector<std::function<void()>> mutations = {
    [&] { append(sandbox_path / "lib/macros.ex", "# c\n"); },
    [&] { auto t = read_text(sandbox_path / "lib/const.ex"); auto at = t.find("do: ") + 4;
          t.insert(at, "1 + "); std::ofstream(sandbox_path / "lib/const.ex", std::ios::trunc) << t; },
    [&] { auto t = read_text(sandbox_path / "lib/shape.ex"); auto at = t.find("h: 1");
          if (at != std::string::npos) t.replace(at, 4, "h: 2"); else t.replace(t.find("h: 2"), 4, "h: 1");
          std::ofstream(sandbox_path / "lib/shape.ex", std::ios::trunc) << t; },
    [&] { append(sandbox_path / "lib/leaf.ex", "defmodule P.Leaf" + std::to_string(rng() % 1000) + " do\n  def x, do: 1\nend\n"); },
    [&] { if (fs::exists(sandbox_path / "lib/extra.ex")) fs::remove(sandbox_path / "lib/extra.ex");
          else std::ofstream(sandbox_path / "lib/extra.ex") << "defmodule P.Extra do\n  def e, do: P.Const.k()\nend\n"; },
  };
  for (int step = 0; step < 8; ++step) {
    auto which = rng() % mutations.size();
    SCOPED_TRACE("step " + std::to_string(step) + " mutation " + std::to_string(which));
    mutations[which]();
    auto run = incremental(sandbox_path);
    ASSERT_EQ(run.exit_code, 0) << run.describe();
    EXPECT_EQ(beam_md5s(result_ebin(run.json())), clean_build(sandbox_path));
  }
}

} // namespace

} // namespace sandbox::test
