#pragma once
// Shared helpers for the beam tests: real BEAM files compiled by erlc and
// elixirc at test time (once per process), and byte surgery on chunks for the
// mutation tests. Header-only because the test build compiles *_test.cpp only.

#include "beam/beam.h"
#include "util/fs.h"

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::beam::testing {

namespace fs = std::filesystem;

inline std::string read_bytes(const fs::path& path)
{
  auto data = util::read_file(path, 1ull << 30);
  if (!data) {
    throw std::runtime_error(data.error());
  }
  return *data;
}

inline void write_bytes(const fs::path& path, std::string_view data)
{
  auto written = util::write_file_atomic(path, data);
  if (!written) {
    throw std::runtime_error(written.error());
  }
}

inline std::string shell_quote(std::string_view text)
{
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct CommandResult {
  int exit_code = -1;
  std::string output; // stdout and stderr together
};

inline CommandResult run_command(const std::string& command)
{
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed";
    return result;
  }
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) {
    result.output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline bool have_tool(std::string_view tool)
{
  return std::system(("command -v " + shell_quote(tool) + " >/dev/null 2>&1").c_str()) == 0;
}

// Uses the import of lists:reverse/1, a private helper (LocT), a fun (FunT),
// literals (LitT), an atom longer than 15 bytes (two-byte compact length)
// and a non-ASCII atom.
inline constexpr const char* k_erlang_source = R"(-module(sample).
-export([reverse_all/1, greet/1, table/0, adder/1, kind/1]).

reverse_all(List) -> lists:reverse(List).

greet(Name) -> io_lib:format("hello ~s", [Name]).

table() ->
    #{colors => [red, green, blue],
      'an_atom_that_is_longer_than_sixteen_bytes' => {1, 2.5, <<"bin">>},
      'ünïcödé' => true}.

adder(N) -> fun(X) -> helper(X) + N end.

helper(X) -> X * 2.

kind('ünïcödé') -> unicode;
kind('an_atom_that_is_longer_than_sixteen_bytes') -> long;
kind(_) -> other.
)";

inline constexpr const char* k_elixir_source = R"(defmodule Sample.Greeter do
  def greet(name), do: "Hello, " <> String.upcase(name)
  def shout(words), do: Enum.map(words, &String.upcase/1)
end
)";

// A fresh directory per process, removed at exit.
inline const fs::path& scratch_dir()
{
  static util::TempDir dir = [] {
    auto created = util::TempDir::create(util::default_temp_root(), "beam-test-");
    if (!created) {
      throw std::runtime_error(created.error());
    }
    return std::move(*created);
  }();
  return dir.path();
}

struct Compiled {
  std::optional<fs::path> beam;
  std::string why; // set when beam is empty
};

inline Compiled compile(std::string_view tool, std::string_view source_name,
                        std::string_view source, std::string_view beam_name)
{
  Compiled out;
  if (!have_tool(tool)) {
    out.why = std::string(tool) + " is not installed";
    return out;
  }
  const fs::path dir = scratch_dir() / std::string(tool);
  fs::create_directories(dir);
  write_bytes(dir / std::string(source_name), source);
  const std::string command = "cd " + shell_quote(dir.string()) + " && " + std::string(tool) + " " +
                              shell_quote(std::string(source_name));
  auto result = run_command(command);
  const fs::path beam = dir / std::string(beam_name);
  if (result.exit_code != 0 || !fs::exists(beam)) {
    out.why = std::string(tool) + " failed: " + result.output;
    return out;
  }
  out.beam = beam;
  return out;
}

inline const Compiled& erlang_fixture()
{
  static const Compiled compiled = compile("erlc", "sample.erl", k_erlang_source, "sample.beam");
  return compiled;
}

inline const Compiled& elixir_fixture()
{
  static const Compiled compiled =
      compile("elixirc", "greeter.ex", k_elixir_source, "Elixir.Sample.Greeter.beam");
  return compiled;
}

inline std::string be32(std::uint32_t value)
{
  std::string out(4, '\0');
  for (int i = 3; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

inline void put_be32(std::string& bytes, std::size_t offset, std::uint32_t value)
{
  bytes.replace(offset, 4, be32(value));
}

inline std::uint32_t get_be32(std::string_view bytes, std::size_t offset)
{
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    value = (value << 8) | static_cast<std::uint8_t>(bytes.at(offset + i));
  }
  return value;
}

struct RawChunk {
  std::string id;
  std::string data;
};

// Splits a file parse_beam accepted.
inline std::vector<RawChunk> split_chunks(std::string_view bytes)
{
  auto info = parse_beam(bytes);
  if (!info) {
    throw std::runtime_error("split_chunks on an invalid file: " + info.error().reason);
  }
  std::vector<RawChunk> chunks;
  for (const auto& chunk : info->chunks) {
    chunks.push_back(RawChunk{chunk.id, std::string(bytes.substr(chunk.offset, chunk.size))});
  }
  return chunks;
}

// Builds a FOR1/BEAM container with correct lengths and zero padding.
inline std::string assemble(const std::vector<RawChunk>& chunks)
{
  std::string body = "BEAM";
  for (const auto& chunk : chunks) {
    body += chunk.id + be32(static_cast<std::uint32_t>(chunk.data.size())) + chunk.data;
    body.append((4 - chunk.data.size() % 4) % 4, '\0');
  }
  return "FOR1" + be32(static_cast<std::uint32_t>(body.size())) + body;
}

inline RawChunk& find(std::vector<RawChunk>& chunks, std::string_view id)
{
  for (auto& chunk : chunks) {
    if (chunk.id == id) {
      return chunk;
    }
  }
  throw std::runtime_error("no chunk " + std::string(id));
}

inline void remove(std::vector<RawChunk>& chunks, std::string_view id)
{
  std::erase_if(chunks, [&](const RawChunk& chunk) { return chunk.id == id; });
}

// The compact term encoding of an unsigned number (tag u), as beam_asm
// writes OTP 28 atom lengths.
inline std::string compact_u(std::uint64_t value)
{
  if (value < 16) {
    return std::string(1, static_cast<char>(value << 4));
  }
  if (value < 0x800) {
    return {static_cast<char>(((value >> 3) & 0xe0) | 0x08), static_cast<char>(value & 0xff)};
  }
  std::string digits;
  for (std::uint64_t v = value; v != 0; v >>= 8) {
    digits.insert(digits.begin(), static_cast<char>(v & 0xff));
  }
  if (static_cast<std::uint8_t>(digits.front()) & 0x80) {
    digits.insert(digits.begin(), '\0'); // keep it non-negative
  }
  return static_cast<char>(((digits.size() - 2) << 5) | 0x18) + digits;
}

inline std::string atom_table(const std::vector<std::string>& atoms, bool compact)
{
  const auto count = static_cast<std::uint32_t>(atoms.size());
  std::string out = be32(compact ? 0u - count : count);
  for (const auto& atom : atoms) {
    out += compact ? compact_u(atom.size()) : std::string(1, static_cast<char>(atom.size()));
    out += atom;
  }
  return out;
}

inline std::string zlib_compress(std::string_view data)
{
  uLongf size = compressBound(static_cast<uLong>(data.size()));
  std::string out(size, '\0');
  if (compress(reinterpret_cast<Bytef*>(out.data()), &size,
               reinterpret_cast<const Bytef*>(data.data()),
               static_cast<uLong>(data.size())) != Z_OK) {
    throw std::runtime_error("compress failed");
  }
  out.resize(size);
  return out;
}

inline std::string zlib_inflate(std::string_view data, std::size_t size)
{
  std::string out(size, '\0');
  uLongf out_size = size;
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &out_size,
                 reinterpret_cast<const Bytef*>(data.data()),
                 static_cast<uLong>(data.size())) != Z_OK ||
      out_size != size) {
    throw std::runtime_error("uncompress failed");
  }
  return out;
}

} // namespace sandbox::beam::testing

// Skips the current test when the compiler for a fixture is unavailable.
#define SANDBOX_REQUIRE_FIXTURE(fixture)                                                           \
  do {                                                                                             \
    if (!(fixture).beam) {                                                                         \
      GTEST_SKIP() << (fixture).why;                                                               \
    }                                                                                              \
  } while (0)
