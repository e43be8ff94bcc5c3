// Real libraries nobody on this project wrote, copied to temp dirs and
// compiled with mix and with elixirc; the BEAMs are then used in a fresh VM.

#include "support.h"

#include <fstream>

namespace sandbox::test {

namespace {

struct Library {
  std::string name;
  std::string compiler;
  std::string code;     // Elixir run with -pa the returned ebin dir
  std::string expected; // its stdout
  std::string module;   // one module that must be among the results
};

void PrintTo(const Library& lib, std::ostream* out)
{
  *out << lib.name << " with " << lib.compiler;
}

using CorpusConfig = SandboxTest;

class Corpus : public SandboxTest, public ::testing::WithParamInterface<Library> {};

TEST_P(Corpus, CompilesAndRunsInAFreshVm)
{
  SKIP_WITHOUT_CORPORA();
  const auto& lib = GetParam();
  auto sandbox_path = copy_corpus(lib.name);
  auto before = snapshot_tree(sandbox_path);
  auto run = compile(sandbox_path, {"--compiler", lib.compiler});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  expect_success_contract(result);
  auto modules = result["modules"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(modules.begin(), modules.end(), lib.module), modules.end())
      << result["modules"];
  if (lib.compiler == "mix") {
    ASSERT_TRUE(result["app_file"].is_string()) << result["app_file"];
    EXPECT_EQ(fs::path(result["app_file"].get<std::string>()).filename(), lib.name + ".app");
  } else {
    EXPECT_TRUE(result["app_file"].is_null());
  }
  EXPECT_EQ(diff_trees(before, snapshot_tree(sandbox_path)), "") << "the sandbox was modified";

  ASSERT_FALSE(beam_paths(result).empty());
  auto vm = run_elixir(beam_paths(result).front().parent_path(), lib.code);
  EXPECT_EQ(vm.exit_code, 0) << vm.describe();
  EXPECT_EQ(vm.out, lib.expected) << vm.describe();
}

std::string name_of(const ::testing::TestParamInfo<Library>& info)
{
  return info.param.name + "_" + info.param.compiler;
}

const std::string kDecimal = "IO.puts(Decimal.add(Decimal.new(\"1.1\"), Decimal.new(\"2.2\")))";
const std::string kNimble =
    "IO.inspect(NimbleOptions.validate([a: 1], [a: [type: :integer]])); "
    "{:error, %NimbleOptions.ValidationError{}} = NimbleOptions.validate([a: :x], [a: [type: "
    ":integer]])";
const std::string kMime = "IO.puts(MIME.type(\"json\")); IO.puts(MIME.extensions(\"text/html\") "
                          "|> Enum.join(\",\"))";
// With mix, the application (which records its compile_env) must also start.
const std::string kMimeApp = "{:ok, _} = Application.ensure_all_started(:mime); " + kMime;

INSTANTIATE_TEST_SUITE_P(
    Libraries, Corpus,
    ::testing::Values(
        Library{"decimal", "mix", kDecimal, "3.3\n", "Elixir.Decimal"},
        Library{"decimal", "elixirc", kDecimal, "3.3\n", "Elixir.Decimal"},
        Library{"nimble_options", "mix", kNimble, "{:ok, [a: 1]}\n", "Elixir.NimbleOptions"},
        Library{"nimble_options", "elixirc", kNimble, "{:ok, [a: 1]}\n", "Elixir.NimbleOptions"},
        Library{"mime", "mix", kMimeApp, "application/json\nhtml,htm\n", "Elixir.MIME"},
        Library{"mime", "elixirc", kMime, "application/json\nhtml,htm\n", "Elixir.MIME"}),
    name_of);

TEST_F(CorpusConfig, MimeCompileEnvReadsTheProjectConfigWithMix)
{
  SKIP_WITHOUT_CORPORA();
  // MIME reads `config :mime, :types` with Application.compile_env: the
  // project's config/config.exs is part of a mix compile.
  auto sandbox_path = copy_corpus("mime");
  fs::create_directories(sandbox_path / "config");
  std::ofstream(sandbox_path / "config" / "config.exs")
      << "import Config\n"
         "config :mime, :types, %{\"application/vnd.api+json\" => [\"json-api\"]}\n";
  auto run = compile(sandbox_path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto vm = run_elixir(beam_paths(run.json()).front().parent_path(),
                       "IO.puts(MIME.type(\"json-api\")); "
                       "{:ok, _} = Application.ensure_all_started(:mime); "
                       "IO.puts(MIME.extensions(\"application/vnd.api+json\") |> Enum.join())");
  EXPECT_EQ(vm.exit_code, 0) << vm.describe();
  EXPECT_EQ(vm.out, "application/vnd.api+json\njson-api\n") << vm.describe();
}

} // namespace

} // namespace sandbox::test
