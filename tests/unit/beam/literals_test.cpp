// read_literals and for_each_instruction: what the security audit reads of
// a BEAM beyond its tables. Every literal table and instruction stream of
// the installed toolchain decodes; the atoms, groups and external funs of a
// module come out as written; what cannot be decoded is an error, never a
// crash or a read past the data.

#include "beam/beam.h"
#include "beam_fixtures.h"

#include <gtest/gtest.h>

#include <zlib.h>

#include <algorithm>
#include <set>

namespace sandbox::beam {
namespace {

using namespace testing;
using namespace std::string_literals;

std::expected<Literals, BeamError> literals_of(const std::string& bytes)
{
  auto info = parse_beam(bytes);
  if (!info) return std::unexpected(info.error());
  return read_literals(bytes, *info);
}

// The BEAM directories of the installed OTP and Elixir.
std::vector<fs::path> toolchain_roots()
{
  auto where = run_command("elixir -e 'IO.puts(:code.root_dir()); IO.puts(:code.lib_dir(:elixir))' 2>/dev/null");
  auto newline = where.output.find('\n');
  if (where.exit_code != 0 || newline == std::string::npos) return {};
  return {fs::path(where.output.substr(0, newline)) / "lib",
          fs::path(where.output.substr(newline + 1, where.output.find('\n', newline + 1) - newline - 1)).parent_path()};
}

TEST(ReadLiterals, DecodesEveryBeamOfTheToolchain)
{
  if (!have_tool("elixir")) GTEST_SKIP() << "elixir is not installed";
  auto roots = toolchain_roots();
  ASSERT_EQ(roots.size(), 2u);
  std::size_t decoded = 0, funs = 0, walked = 0;
  for (const auto& root : roots) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->path().extension() != ".beam" || !it->is_regular_file()) continue;
      auto bytes = read_bytes(it->path());
      auto info = parse_beam(bytes);
      if (!info) continue; // not ours to read
      auto literals = read_literals(bytes, *info);
      ASSERT_TRUE(literals) << it->path() << ": " << literals.error().reason;
      EXPECT_EQ(literals->atoms.size(), info->literal_count) << it->path();
      ++decoded;
      funs += literals->funs.size();
      std::size_t instructions = 0;
      auto walk = for_each_instruction(bytes, *info, [&](std::uint8_t, const std::vector<Operand>& operands) {
        ++instructions;
        for (const auto& op : operands) {
          if (op.kind == Operand::Kind::atom) {
            EXPECT_LE(op.value, info->atoms.size()) << it->path();
          }
          if (op.kind == Operand::Kind::literal) {
            EXPECT_LT(op.value, info->literal_count) << it->path();
          }
        }
        return true;
      });
      ASSERT_TRUE(walk) << it->path() << ": " << walk.error().reason;
      walked += instructions > 0 ? 1 : 0;
    }
  }
  EXPECT_GT(decoded, 1000u);
  EXPECT_EQ(walked, decoded);
  EXPECT_GT(funs, 0u) << "some module of the toolchain captures a remote function (&Mod.fun/1)";
}

const char* const kSource = R"(defmodule Lits do
  def list, do: [System, :ok]
  def pair, do: {System, :cmd}
  def opts, do: [mod: :os, fun: :cmd]
  def exported, do: [{:init, 1}, {:stop, 1}]
  def map, do: %{runner: File, op: :rm_rf}
  def nested, do: {:stop, {:bad_return, {:init, 1}}}
  def capture, do: &System.cmd/2
  def go(m), do: m.shell("id")
end
)";

bool has_group(const Literals& literals, std::set<std::string> wanted)
{
  return std::any_of(literals.groups.begin(), literals.groups.end(), [&](const std::vector<std::string>& group) {
    return std::set<std::string>(group.begin(), group.end()) == wanted;
  });
}

bool some_group_holds(const Literals& literals, const std::string& a, const std::string& b)
{
  return std::any_of(literals.groups.begin(), literals.groups.end(), [&](const std::vector<std::string>& group) {
    return std::find(group.begin(), group.end(), a) != group.end() &&
           std::find(group.begin(), group.end(), b) != group.end();
  });
}

TEST(ReadLiterals, AtomsGroupsAndFunsComeOutAsWritten)
{
  auto compiled = compile("elixirc", "lits.ex", kSource, "Elixir.Lits.beam");
  if (!compiled.beam) GTEST_SKIP() << compiled.why;
  auto bytes = read_bytes(*compiled.beam);
  auto literals = literals_of(bytes);
  ASSERT_TRUE(literals) << literals.error().reason;

  std::set<std::string> atoms;
  for (const auto& each : literals->atoms) atoms.insert(each.begin(), each.end());
  for (const char* atom : {"Elixir.System", "ok", "cmd", "os", "Elixir.File", "rm_rf", "init", "stop"}) {
    EXPECT_TRUE(atoms.contains(atom)) << atom;
  }
  // A tuple, a keyword list's values, a map's values: written together.
  EXPECT_TRUE(has_group(*literals, {"Elixir.System", "cmd"}));
  EXPECT_TRUE(has_group(*literals, {"os", "cmd"}));
  EXPECT_TRUE(has_group(*literals, {"Elixir.File", "rm_rf"}));
  // Keys are not values; nested tuples and a list of {name, arity} entries
  // (what __info__(:functions) returns) do not put init and stop together.
  EXPECT_FALSE(some_group_holds(*literals, "mod", "fun"));
  EXPECT_FALSE(some_group_holds(*literals, "init", "stop"));
  // &System.cmd/2 is a literal external fun, which no import shows.
  ASSERT_EQ(literals->funs.size(), 1u);
  EXPECT_EQ(literals->funs[0].target.module, "Elixir.System");
  EXPECT_EQ(literals->funs[0].target.function, "cmd");
  EXPECT_EQ(literals->funs[0].target.arity, 2u);
  EXPECT_TRUE(literals->atoms[literals->funs[0].literal].empty()) << "a fun's own atoms are not values";

  // m.shell("id"): the apply instruction, its function loaded as an atom just before.
  auto info = parse_beam(bytes);
  ASSERT_TRUE(info);
  bool apply_seen = false;
  std::string last_atom;
  auto walk = for_each_instruction(bytes, *info, [&](std::uint8_t opcode, const std::vector<Operand>& operands) {
    if (opcode == 112 || opcode == 113) apply_seen = apply_seen || last_atom == "shell";
    if (opcode == 64 && operands.size() == 2 && operands[0].kind == Operand::Kind::atom && operands[0].value >= 1) {
      last_atom = info->atoms[operands[0].value - 1];
    }
    return true;
  });
  ASSERT_TRUE(walk) << walk.error().reason;
  EXPECT_TRUE(apply_seen);
}

// A literal table holding `terms` (each without its version byte).
std::string literal_chunk(const std::vector<std::string>& terms)
{
  std::string table = be32(static_cast<std::uint32_t>(terms.size()));
  for (const auto& term : terms) table += be32(static_cast<std::uint32_t>(term.size() + 1)) + '\x83' + term;
  uLongf packed_size = compressBound(table.size());
  std::string packed(packed_size, '\0');
  compress(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(table.data()),
           table.size());
  packed.resize(packed_size);
  return be32(static_cast<std::uint32_t>(table.size())) + packed;
}

// The Erlang fixture with its literal table replaced.
std::string with_literals(const std::string& chunk)
{
  auto chunks = split_chunks(read_bytes(*erlang_fixture().beam));
  find(chunks, "LitT").data = chunk;
  return assemble(chunks);
}

TEST(ReadLiterals, WhatCannotBeDecodedIsAnError)
{
  if (!erlang_fixture().beam) GTEST_SKIP() << erlang_fixture().why;
  auto reason = [](const std::vector<std::string>& terms) {
    auto literals = literals_of(with_literals(literal_chunk(terms)));
    return literals ? std::string("<decoded>") : literals.error().reason;
  };
  // An atom cache reference, a compressed term, a local term: never in a literal.
  for (char tag : {'\x52', '\x50', '\x79'}) {
    EXPECT_NE(reason({std::string(1, tag) + "abcd"}).find("which the compiler does not write"), std::string::npos);
  }
  EXPECT_EQ(reason({"\x64\x00\x05" "ab"s}), "chunk LitT: literal 0 is cut short"); // an atom of 5 bytes in 2
  EXPECT_NE(reason({"\x68\x02\x64\x00\x01" "a"s}).find("more terms than it has bytes"), std::string::npos); // {a, _
  EXPECT_NE(reason({std::string("\x6c\xff\xff\xff\xff", 5)}).find("more terms than it has bytes"), std::string::npos);
  EXPECT_NE(reason({"\x6a" "x"s}).find("1 bytes after the term"), std::string::npos);
  // fun M:F/A whose parts are not atoms.
  EXPECT_NE(reason({"\x71\x61\x01\x61\x02\x61\x03"s}).find("not two atoms and a small integer"), std::string::npos);
  EXPECT_EQ(reason({"\x64\x00\x02" "ok"s, "\x6a"s}), "<decoded>");

  // A list nested a hundred thousand deep is read without recursion.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += std::string("\x6c\x00\x00\x00\x01", 5);
  deep += "\x64\x00\x02" "os"s;
  deep += std::string(100000, '\x6a');
  auto literals = literals_of(with_literals(literal_chunk({deep})));
  ASSERT_TRUE(literals) << literals.error().reason;
  EXPECT_EQ(literals->atoms[0], std::vector<std::string>{"os"});
}

// Every byte of a real literal table replaced in turn: an answer or an
// error, never a read past the table.
TEST(ReadLiterals, MutatedLiteralsAreDecodedOrRefused)
{
  auto compiled = compile("elixirc", "lits.ex", kSource, "Elixir.Lits.beam");
  if (!compiled.beam) GTEST_SKIP() << compiled.why;
  auto chunks = split_chunks(read_bytes(*compiled.beam));
  const auto& chunk = find(chunks, "LitT").data;
  std::string table(get_be32(chunk, 0), '\0');
  uLongf size = table.size();
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(table.data()), &size,
                       reinterpret_cast<const Bytef*>(chunk.data() + 4), chunk.size() - 4),
            Z_OK);
  std::size_t decoded = 0;
  for (std::size_t at = 4; at < table.size(); ++at) {
    for (int value : {0x00, 0x01, 0x61, 0x64, 0x68, 0x6c, 0x71, 0x74, 0x77, 0xFF}) {
      auto mutated = table;
      mutated[at] = static_cast<char>(value);
      uLongf packed_size = compressBound(mutated.size());
      std::string packed(packed_size, '\0');
      compress(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
               reinterpret_cast<const Bytef*>(mutated.data()), mutated.size());
      packed.resize(packed_size);
      auto copy = chunks;
      find(copy, "LitT").data = be32(static_cast<std::uint32_t>(mutated.size())) + packed;
      auto bytes = assemble(copy);
      auto info = parse_beam(bytes);
      if (!info) continue;
      decoded += read_literals(bytes, *info) ? 1 : 0;
    }
  }
  EXPECT_GT(decoded, 0u);
}

} // namespace
} // namespace sandbox::beam
