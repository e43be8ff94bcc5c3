// parse_beam on real files: modules compiled by erlc and elixirc at test time,
// and every BEAM file the installed toolchain ships.

#include "beam/beam.h"
#include "beam_fixtures.h"

#include <algorithm>
#include <cctype>
#include <gtest/gtest.h>

namespace sandbox::beam {
namespace {

using namespace testing;

bool has_import(const BeamInfo& info, std::string_view module, std::string_view function,
                std::uint32_t arity)
{
  return std::any_of(info.imports.begin(), info.imports.end(), [&](const Import& import) {
    return import.module == module && import.function == function && import.arity == arity;
  });
}

bool has_function(const std::vector<Export>& table, std::string_view function, std::uint32_t arity)
{
  return std::any_of(table.begin(), table.end(), [&](const Export& entry) {
    return entry.function == function && entry.arity == arity;
  });
}

bool has_chunk(const BeamInfo& info, std::string_view id)
{
  return std::any_of(info.chunks.begin(), info.chunks.end(),
                     [&](const Chunk& chunk) { return chunk.id == id; });
}

TEST(BeamParse, ErlangModuleHasItsImportsExportsAndLocals)
{
  const auto& fixture = erlang_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  const auto bytes = read_bytes(*fixture.beam);
  auto info = parse_beam(bytes);
  ASSERT_TRUE(info) << info.error().reason;

  EXPECT_EQ(info->module, "sample");
  ASSERT_FALSE(info->atoms.empty());
  EXPECT_EQ(info->atoms.front(), "sample");
  EXPECT_NE(std::find(info->atoms.begin(), info->atoms.end(), "ünïcödé"), info->atoms.end());
  EXPECT_TRUE(has_import(*info, "lists", "reverse", 1));
  EXPECT_TRUE(has_import(*info, "io_lib", "format", 2));
  EXPECT_TRUE(has_function(info->exports, "reverse_all", 1));
  EXPECT_TRUE(has_function(info->exports, "greet", 1));
  EXPECT_TRUE(has_function(info->exports, "table", 0));
  EXPECT_TRUE(has_function(info->exports, "module_info", 0));
  EXPECT_TRUE(has_function(info->exports, "module_info", 1));
  EXPECT_FALSE(has_function(info->exports, "helper", 1));
  EXPECT_TRUE(has_function(info->locals, "helper", 1));
  EXPECT_GT(info->literal_count, 0u);
  for (std::string_view id : {"AtU8", "Code", "StrT", "ImpT", "ExpT", "LocT", "FunT", "LitT"}) {
    EXPECT_TRUE(has_chunk(*info, id)) << id;
  }
  for (const auto& chunk : info->chunks) {
    EXPECT_EQ(chunk.offset % 4, 0u) << chunk.id;
    EXPECT_LE(std::uint64_t{chunk.offset} + chunk.size, bytes.size()) << chunk.id;
    EXPECT_EQ(std::string_view(bytes).substr(chunk.offset - 8, 4), chunk.id);
  }
}

TEST(BeamParse, ErlangFileValidatesUnderItsOwnName)
{
  const auto& fixture = erlang_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  auto info = validate_beam_file(*fixture.beam);
  ASSERT_TRUE(info) << info.error().reason;
  EXPECT_EQ(info->module, "sample");
}

TEST(BeamParse, Md5MatchesBeamLib)
{
  const auto& fixture = erlang_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  if (!have_tool("erl")) {
    GTEST_SKIP() << "erl is not installed";
  }
  const std::string eval = "{ok,{_,D}} = beam_lib:md5(\"" + fixture.beam->string() +
                           "\"), io:format(\"~s\", [binary:encode_hex(D)]), halt().";
  auto result = run_command("erl -noshell -eval " + shell_quote(eval));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::string expected = result.output;
  std::transform(expected.begin(), expected.end(), expected.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });

  auto info = parse_beam(read_bytes(*fixture.beam));
  ASSERT_TRUE(info) << info.error().reason;
  EXPECT_EQ(info->md5, expected);
}

TEST(BeamParse, ElixirModuleHasItsImportsAndExports)
{
  const auto& fixture = elixir_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  auto info = validate_beam_file(*fixture.beam);
  ASSERT_TRUE(info) << info.error().reason;

  EXPECT_EQ(info->module, "Elixir.Sample.Greeter");
  EXPECT_TRUE(has_import(*info, "Elixir.String", "upcase", 1));
  EXPECT_TRUE(has_import(*info, "Elixir.Enum", "map", 2));
  EXPECT_TRUE(has_function(info->exports, "greet", 1));
  EXPECT_TRUE(has_function(info->exports, "shout", 1));
  EXPECT_TRUE(has_function(info->exports, "__info__", 1));
  // Elixir keeps docs and its own checker data in extra chunks.
  EXPECT_TRUE(has_chunk(*info, "Docs") || has_chunk(*info, "ExCk") || has_chunk(*info, "Dbgi"));
}

// OTP 25 writes the classic atom table; rewriting it into the OTP 28 form
// (negated count, compact lengths) must give the same atoms.
TEST(BeamParse, CompactAtomTableGivesTheSameAtoms)
{
  const auto& fixture = erlang_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  const auto bytes = read_bytes(*fixture.beam);
  auto classic = parse_beam(bytes);
  ASSERT_TRUE(classic) << classic.error().reason;

  auto chunks = split_chunks(bytes);
  find(chunks, "AtU8").data = atom_table(classic->atoms, true);
  auto compact = parse_beam(assemble(chunks));
  ASSERT_TRUE(compact) << compact.error().reason;
  EXPECT_EQ(compact->atoms, classic->atoms);
  EXPECT_EQ(compact->imports.size(), classic->imports.size());
}

TEST(BeamParse, CompactAtomTableAllowsLongUtf8Atoms)
{
  const auto& fixture = erlang_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  auto chunks = split_chunks(read_bytes(*fixture.beam));
  auto atoms = *parse_beam(assemble(chunks));
  // 255 two-byte characters: 510 bytes, more than a u8 length can hold.
  std::string long_atom;
  for (int i = 0; i < 255; ++i) {
    long_atom += "\xc3\xa9";
  }
  atoms.atoms.push_back(long_atom);
  find(chunks, "AtU8").data = atom_table(atoms.atoms, true);
  auto info = parse_beam(assemble(chunks));
  ASSERT_TRUE(info) << info.error().reason;
  EXPECT_EQ(info->atoms.back(), long_atom);
}

// Files from before OTP 20 carry a Latin-1 Atom chunk; atoms come back as
// UTF-8 either way.
TEST(BeamParse, LegacyLatin1AtomChunkIsConvertedToUtf8)
{
  const auto& fixture = erlang_fixture();
  SANDBOX_REQUIRE_FIXTURE(fixture);
  const auto bytes = read_bytes(*fixture.beam);
  auto original = parse_beam(bytes);
  ASSERT_TRUE(original);

  std::vector<std::string> latin1;
  for (const auto& atom : original->atoms) {
    std::string converted;
    for (std::size_t i = 0; i < atom.size(); ++i) {
      auto byte = static_cast<unsigned char>(atom[i]);
      if (byte < 0x80) {
        converted += atom[i];
      } else { // the fixture only has two-byte (Latin-1 range) characters
        converted += static_cast<char>(((byte & 0x1f) << 6) | (atom[i + 1] & 0x3f));
        ++i;
      }
    }
    latin1.push_back(converted);
  }
  auto chunks = split_chunks(bytes);
  auto& table = find(chunks, "AtU8");
  table.id = "Atom";
  table.data = atom_table(latin1, false);
  auto info = parse_beam(assemble(chunks));
  ASSERT_TRUE(info) << info.error().reason;
  EXPECT_EQ(info->atoms, original->atoms);
}

// Parses every .beam below `root`; returns how many.
std::size_t parse_tree(const fs::path& root)
{
  std::size_t count = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file() || it->path().extension() != ".beam") {
      continue;
    }
    auto info = validate_beam_file(it->path());
    EXPECT_TRUE(info) << it->path() << ": " << (info ? "" : info.error().reason);
    ++count;
  }
  return count;
}

std::vector<fs::path> glob_dirs(const fs::path& parent, std::string_view prefix)
{
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().starts_with(prefix)) {
      out.push_back(it->path());
    }
  }
  return out;
}

TEST(BeamCorpus, EveryStdlibBeamParses)
{
  auto dirs = glob_dirs("/usr/lib/erlang/lib", "stdlib-");
  if (dirs.empty()) {
    GTEST_SKIP() << "no /usr/lib/erlang/lib/stdlib-* on this machine";
  }
  std::size_t count = 0;
  for (const auto& dir : dirs) {
    count += parse_tree(dir / "ebin");
  }
  EXPECT_GT(count, 50u);
}

// Wider real-world coverage: every OTP application and the Elixir standard
// library, including files from other compilers' back ends (asn1, yecc, ...).
TEST(BeamCorpus, EveryInstalledOtpAndElixirBeamParses)
{
  std::size_t count = 0;
  for (const char* root : {"/usr/lib/erlang/lib", "/usr/lib/elixir/lib"}) {
    if (fs::is_directory(root)) {
      count += parse_tree(root);
    }
  }
  if (count == 0) {
    GTEST_SKIP() << "no installed Erlang or Elixir libraries";
  }
}

} // namespace
} // namespace sandbox::beam
