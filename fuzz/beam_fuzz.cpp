// libFuzzer entry point for the BEAM reader: any byte string must give a
// BeamInfo or a BeamError, with no crash, leak, undefined behaviour or
// unbounded allocation, and so must the literal and instruction decoders
// on what it accepts. Seed it with real .beam files.
//
// Plain byte mutations nearly always break the FOR1 length or a chunk size,
// so the container check would reject them before any chunk parser runs.
// Two things get past that: every input is parsed a second time with its
// FOR1 length fixed, and a custom mutator often mutates one chunk's data
// (inflated, for LitT) and reassembles the file with correct sizes.

#include "beam/beam.h"

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace {

// Keeps each run fast while still exercising the cap, the growth of the
// inflate buffer and zip bombs.
constexpr std::uint64_t k_literal_cap = 8u << 20;
// What the mutator is willing to inflate and re-deflate.
constexpr std::size_t k_mutator_inflate_cap = 1u << 20;

std::uint32_t get_be32(std::string_view bytes, std::size_t at)
{
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    value = (value << 8) | static_cast<std::uint8_t>(bytes[at + i]);
  }
  return value;
}

std::string be32(std::uint32_t value)
{
  std::string out(4, '\0');
  for (int i = 3; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return out;
}

// Checks what a successful parse promises, so the fuzzer also finds files
// that are accepted but described wrongly.
void check_invariants(std::string_view bytes, const sandbox::beam::BeamInfo& info)
{
  if (info.atoms.empty() || info.module != info.atoms.front() || info.module.empty()) {
    __builtin_trap();
  }
  for (const auto& chunk : info.chunks) {
    if (chunk.id.size() != 4 || chunk.offset < 20 || chunk.offset > bytes.size() ||
        chunk.size > bytes.size() - chunk.offset) {
      __builtin_trap();
    }
  }
  for (const auto& entry : info.exports) {
    if (entry.arity > 255 || entry.label == 0) {
      __builtin_trap();
    }
  }
  for (const auto& entry : info.imports) {
    if (entry.arity > 255) {
      __builtin_trap();
    }
  }
}

void parse_and_check(std::string_view bytes)
{
  sandbox::beam::Limits limits;
  limits.max_literal_bytes = k_literal_cap;
  if (auto info = sandbox::beam::parse_beam(bytes, limits)) {
    check_invariants(bytes, *info);
    // What the security audit reads beyond the tables: every literal's
    // terms and every instruction's operands.
    if (auto literals = sandbox::beam::read_literals(bytes, *info, limits)) {
      if (literals->atoms.size() != info->literal_count) {
        __builtin_trap();
      }
    }
    (void)sandbox::beam::for_each_instruction(bytes, *info, [](std::uint8_t, const auto&) { return true; });
  } else if (info.error().reason.empty()) {
    __builtin_trap();
  }
}

struct RawChunk {
  std::string id;
  std::string data;
};

// Lenient split for the mutator: takes what chunks it can and stops at the
// first one that does not fit.
std::optional<std::vector<RawChunk>> split(std::string_view bytes)
{
  if (bytes.size() < 12 || bytes.substr(0, 4) != "FOR1") {
    return std::nullopt;
  }
  std::vector<RawChunk> chunks;
  std::size_t pos = 12;
  while (bytes.size() - pos >= 8) {
    const std::uint32_t size = get_be32(bytes, pos + 4);
    if (size > bytes.size() - pos - 8) {
      break;
    }
    chunks.push_back(
        RawChunk{std::string(bytes.substr(pos, 4)), std::string(bytes.substr(pos + 8, size))});
    pos += 8 + ((std::size_t{size} + 3) & ~std::size_t{3});
    pos = std::min(pos, bytes.size());
  }
  return chunks;
}

std::string assemble(const std::vector<RawChunk>& chunks)
{
  std::string body = "BEAM";
  for (const auto& chunk : chunks) {
    body += chunk.id + be32(static_cast<std::uint32_t>(chunk.data.size())) + chunk.data;
    body.append((4 - chunk.data.size() % 4) % 4, '\0');
  }
  return "FOR1" + be32(static_cast<std::uint32_t>(body.size())) + body;
}

void mutate_string(std::string& data, std::size_t max_size)
{
  const std::size_t size = data.size();
  data.resize(std::max(max_size, size));
  data.resize(LLVMFuzzerMutate(reinterpret_cast<std::uint8_t*>(data.data()), size, data.size()));
}

// Mutates the inflated literal table and deflates it again; false if the
// chunk does not inflate.
bool mutate_literal_chunk(std::string& chunk, std::mt19937& random)
{
  if (chunk.size() < 4) {
    return false;
  }
  const std::uint32_t declared = get_be32(chunk, 0);
  if (declared > k_mutator_inflate_cap) {
    return false;
  }
  std::string table(declared, '\0');
  uLongf table_size = declared;
  if (uncompress(reinterpret_cast<Bytef*>(table.data()), &table_size,
                 reinterpret_cast<const Bytef*>(chunk.data() + 4), chunk.size() - 4) != Z_OK) {
    return false;
  }
  table.resize(table_size);
  mutate_string(table, table.size() * 2 + 64);
  uLongf packed_size = compressBound(table.size());
  std::string packed(packed_size, '\0');
  // The fastest level: the parser does not care how well the data packs.
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                reinterpret_cast<const Bytef*>(table.data()), table.size(), 1) != Z_OK) {
    return false;
  }
  packed.resize(packed_size);
  // Usually declare the true size; sometimes keep the old one to probe the
  // size checks.
  const std::uint32_t size =
      random() % 8 == 0 ? declared : static_cast<std::uint32_t>(table.size());
  chunk = be32(size) + packed;
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  parse_and_check(bytes);
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "FOR1" &&
      get_be32(bytes, 4) != bytes.size() - 8 && bytes.size() - 8 <= UINT32_MAX) {
    std::string fixed(bytes);
    std::memcpy(fixed.data() + 4, be32(static_cast<std::uint32_t>(bytes.size() - 8)).data(), 4);
    parse_and_check(fixed);
  }
  return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed)
{
  std::mt19937 random(seed);
  auto chunks = split(std::string_view(reinterpret_cast<const char*>(data), size));
  if (random() % 3 == 0 || !chunks || chunks->empty()) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  auto& target = (*chunks)[random() % chunks->size()];
  switch (random() % 8) {
  case 0: // drop the chunk
    target = chunks->back();
    chunks->pop_back();
    break;
  case 1: // duplicate it
    chunks->push_back(target);
    break;
  default:
    if (target.id != "LitT" || random() % 4 == 0 || !mutate_literal_chunk(target.data, random)) {
      mutate_string(target.data, target.data.size() * 2 + 64);
    }
  }
  const std::string out = assemble(*chunks);
  if (out.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::memcpy(data, out.data(), out.size());
  return out.size();
}
