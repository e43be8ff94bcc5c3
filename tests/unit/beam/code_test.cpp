// has_on_load: the instruction stream is decoded exactly (every BEAM of the
// installed toolchain), and what it cannot decode is an error, never a guess.

#include "beam/beam.h"
#include "beam_fixtures.h"

#include <gtest/gtest.h>

namespace sandbox::beam {
namespace {

using namespace testing;

std::expected<bool, BeamError> on_load_of(const fs::path& path)
{
  auto bytes = read_bytes(path);
  auto info = parse_beam(bytes);
  if (!info) return std::unexpected(info.error());
  return has_on_load(bytes, *info);
}

TEST(HasOnLoad, FalseForModulesWithoutOne)
{
  for (const auto* fixture : {&erlang_fixture(), &elixir_fixture()}) {
    if (!fixture->beam) GTEST_SKIP() << fixture->why;
    auto found = on_load_of(*fixture->beam);
    ASSERT_TRUE(found) << found.error().reason;
    EXPECT_FALSE(*found) << *fixture->beam;
  }
}

TEST(HasOnLoad, TrueForErlangAndElixirOnLoad)
{
  auto erlang = compile("erlc", "loads.erl",
                        "-module(loads).\n-on_load(init/0).\n-export([f/1]).\n"
                        "init() -> ok.\nf(X) -> {X, [a, 1.5, <<\"b\">>]}.\n",
                        "loads.beam");
  auto elixir = compile("elixirc", "loads.ex",
                        "defmodule Loads do\n  @on_load :init\n  def init, do: :ok\n"
                        "  def f(x), do: {x, %{a: 1.5}}\nend\n",
                        "Elixir.Loads.beam");
  for (const auto* compiled : {&erlang, &elixir}) {
    if (!compiled->beam) GTEST_SKIP() << compiled->why;
    auto found = on_load_of(*compiled->beam);
    ASSERT_TRUE(found) << found.error().reason;
    EXPECT_TRUE(*found) << *compiled->beam;
  }
}

// Every module of OTP and Elixir as installed: a wrong operand count for any
// opcode the compiler uses would derail the decoder on one of them.
TEST(HasOnLoad, DecodesEveryBeamOfTheToolchain)
{
  if (!have_tool("elixir")) GTEST_SKIP() << "elixir is not installed";
  auto where = run_command("elixir -e 'IO.puts(:code.root_dir()); IO.puts(:code.lib_dir(:elixir))' 2>/dev/null");
  ASSERT_EQ(where.exit_code, 0) << where.output;
  auto newline = where.output.find('\n');
  ASSERT_NE(newline, std::string::npos);
  std::vector<fs::path> roots = {fs::path(where.output.substr(0, newline)) / "lib",
                                 fs::path(where.output.substr(newline + 1, where.output.find('\n', newline + 1) - newline - 1)).parent_path()};
  std::size_t decoded = 0;
  std::size_t with_on_load = 0;
  for (const auto& root : roots) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->path().extension() != ".beam" || !it->is_regular_file()) continue;
      auto found = on_load_of(it->path());
      if (!found && found.error().reason.find("chunk Code") == std::string::npos) continue; // not ours to read
      ASSERT_TRUE(found) << it->path() << ": " << found.error().reason;
      ++decoded;
      with_on_load += *found ? 1 : 0;
    }
  }
  EXPECT_GT(decoded, 1000u);
  // crypto, asn1rt_nif and the like load NIFs with an on_load function.
  EXPECT_GT(with_on_load, 0u);
  EXPECT_LT(with_on_load, decoded / 10);
}

TEST(HasOnLoad, WhatCannotBeDecodedIsAnError)
{
  const auto& fixture = erlang_fixture();
  if (!fixture.beam) GTEST_SKIP() << fixture.why;
  auto bytes = read_bytes(*fixture.beam);
  auto info = parse_beam(bytes);
  ASSERT_TRUE(info) << info.error().reason;
  const Chunk* code = nullptr;
  for (const auto& chunk : info->chunks) {
    if (chunk.id == "Code") code = &chunk;
  }
  ASSERT_NE(code, nullptr);
  auto first_instruction = code->offset + 4 + get_be32(bytes, code->offset);
  // An opcode no OTP has.
  auto unknown = bytes;
  unknown[first_instruction] = static_cast<char>(250);
  auto result = has_on_load(unknown, *info);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().reason.find("opcode 250"), std::string::npos) << result.error().reason;
  // Every byte of the stream replaced in turn by each of a few values: an
  // answer or an error, never a read past the chunk.
  for (std::size_t at = first_instruction; at < code->offset + code->size; ++at) {
    for (int value : {0x00, 0x07, 0x17, 0x37, 0x57, 0x95, 0xF8, 0xFF}) {
      auto mutated = bytes;
      mutated[at] = static_cast<char>(value);
      (void)has_on_load(mutated, *info);
    }
  }
  // A chunk table that does not fit the bytes.
  EXPECT_FALSE(has_on_load(std::string_view(bytes).substr(0, code->offset + 8), *info));
}

} // namespace
} // namespace sandbox::beam
