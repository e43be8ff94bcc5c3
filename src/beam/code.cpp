// The instruction stream of the Code chunk, read just far enough to find one
// instruction: on_load, which makes the loader call a function of the module
// as soon as it is loaded. Nothing in the other chunks says so, and a host that
// loads a BEAM runs it, so the security audit must know.

#include "beam/beam.h"
#include "beam/byte_reader.h"

#include <array>
#include <cstdint>
#include <vector>

namespace sandbox::beam {

namespace {

using detail::ByteReader;

constexpr std::uint8_t k_on_load = 149;
constexpr std::uint8_t k_int_code_end = 3;

// Operands of every generic opcode (OTP's genop.tab), index = opcode; 0 is
// not an opcode. 1..180 are OTP 25's; 181 update_record/5 and 182
// bs_match/3 came with OTP 26, 183 executable_line/2 with OTP 27. A higher
// opcode is not read (the caller then assumes the worst).
constexpr std::array<std::uint8_t, 184> k_arity = {
  0, 1, 3, 0, 2, 3, 2, 2, 3, 2, 4, 5, 2, 3, 2, 3, 2, 1, 1, 0,
  0, 0, 0, 2, 1, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3,
  3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
  3, 1, 2, 1, 2, 3, 3, 3, 3, 3, 2, 1, 1, 0, 1, 1, 3, 2, 2, 2,
  5, 5, 5, 4, 2, 1, 1, 2, 2, 5, 5, 5, 2, 1, 0, 1, 2, 2, 4, 4,
  4, 4, 3, 1, 2, 1, 1, 1, 2, 6, 3, 5, 1, 2, 2, 3, 5, 7, 7, 7,
  5, 3, 2, 2, 5, 6, 2, 2, 2, 2, 1, 3, 4, 0, 8, 6, 2, 6, 5, 4,
  5, 4, 5, 4, 3, 3, 3, 3, 3, 0, 1, 1, 7, 1, 5, 5, 2, 3, 3, 4,
  0, 0, 2, 2, 2, 3, 4, 3, 2, 2, 4, 3, 1, 2, 1, 1, 1, 6, 3, 0,
  1, 5, 3, 2,
};

// Operands nest only through lists and typed registers; a deeper nesting is
// not something the compiler writes.
constexpr int k_max_depth = 4;

class OperandReader {
public:
  explicit OperandReader(ByteReader& reader) : m_reader(reader) {}

  // One operand in the compact term encoding, appended to `out` (when
  // given; a list's elements in its place); with `value`, the integer it
  // carries when that fits 64 bits (counts of lists).
  bool read(std::vector<Operand>* out, int depth = 0, std::uint64_t* value = nullptr)
  {
    if (depth > k_max_depth) return false;
    auto first = m_reader.u8();
    if (!first) return false;
    std::uint8_t b = *first;
    if ((b & 0x07) == 0x07) return extended(b, out, depth);
    std::uint64_t number = 0;
    bool fits = true;
    if ((b & 0x08) == 0) { // the value is in the high nibble
      number = b >> 4;
    } else if ((b & 0x10) == 0) { // 11 bits: three here, eight in the next byte
      auto low = m_reader.u8();
      if (!low) return false;
      number = (static_cast<std::uint64_t>(b & 0xE0) << 3) | *low;
    } else {
      std::uint64_t length = (b >> 5) + 2u;
      if (length == 9) { // the length itself follows, less 9
        std::uint64_t more = 0;
        if (!read(nullptr, depth + 1, &more) || more > m_reader.remaining()) return false;
        length = more + 9;
      }
      auto bytes = m_reader.bytes(length);
      if (!bytes) return false;
      fits = length <= 8;
      if (value && !fits) return false; // no count is that large
      for (char c : fits ? *bytes : std::string_view{}) number = (number << 8) | static_cast<std::uint8_t>(c);
    }
    if (value) *value = number;
    if (out) {
      static constexpr std::array<Operand::Kind, 7> kinds = {
        Operand::Kind::unsigned_integer, Operand::Kind::integer, Operand::Kind::atom, Operand::Kind::x_register,
        Operand::Kind::y_register,       Operand::Kind::label,   Operand::Kind::other};
      out->push_back({fits ? kinds[b & 0x07] : Operand::Kind::other, fits ? number : 0});
    }
    return true;
  }

private:
  bool extended(std::uint8_t b, std::vector<Operand>* out, int depth)
  {
    if ((b & 0x08) != 0) return false;
    switch (b >> 4) {
    case 0: // a float (older compilers)
      if (out) out->push_back({Operand::Kind::other, 0});
      return static_cast<bool>(m_reader.bytes(8));
    case 1: { // a list: its length, then that many operands
      std::uint64_t count = 0;
      if (!read(nullptr, depth + 1, &count) || count > m_reader.remaining()) return false;
      for (std::uint64_t i = 0; i < count; ++i) {
        if (!read(out, depth + 1)) return false;
      }
      return true;
    }
    case 2: // a float register
      if (out) out->push_back({Operand::Kind::other, 0});
      return read(nullptr, depth + 1);
    case 3: { // an allocation list: its length, then (kind, amount) pairs
      std::uint64_t count = 0;
      if (!read(nullptr, depth + 1, &count) || count > m_reader.remaining()) return false;
      for (std::uint64_t i = 0; i < 2 * count; ++i) {
        if (!read(nullptr, depth + 1)) return false;
      }
      if (out) out->push_back({Operand::Kind::other, 0});
      return true;
    }
    case 4: { // a literal: its index in the literal table
      std::uint64_t index = 0;
      if (!read(nullptr, depth + 1, &index)) return false;
      if (out) out->push_back({Operand::Kind::literal, index});
      return true;
    }
    case 5: // a register with a type: the register, then the type's index
      return read(out, depth + 1) && read(nullptr, depth + 1);
    default:
      return false;
    }
  }

  ByteReader& m_reader;
};

} // namespace

std::expected<void, BeamError> for_each_instruction(std::string_view bytes, const BeamInfo& info,
                                                    const InstructionVisitor& visit)
{
  const Chunk* code = nullptr;
  for (const auto& chunk : info.chunks) {
    if (chunk.id == "Code") code = &chunk;
  }
  if (code == nullptr || code->offset > bytes.size() || code->size > bytes.size() - code->offset) {
    return std::unexpected(BeamError{"chunk Code: not found in the file"});
  }
  ByteReader reader(bytes.substr(code->offset, code->size));
  auto header_size = reader.u32();
  auto header = header_size ? reader.bytes(*header_size) : std::nullopt;
  if (!header || header->size() < 16) {
    return std::unexpected(BeamError{"chunk Code: truncated header"});
  }
  ByteReader fields(*header);
  (void)fields.u32(); // instruction set
  auto opcode_max = fields.u32();
  OperandReader operands(reader);
  std::vector<Operand> read;
  while (!reader.at_end()) {
    auto position = reader.position();
    auto opcode = *reader.u8();
    if (opcode == 0 || opcode >= k_arity.size() || opcode > *opcode_max) {
      return std::unexpected(BeamError{"chunk Code: opcode " + std::to_string(opcode) + " at byte " +
                                       std::to_string(position) + " is not one this reader knows"});
    }
    read.clear();
    for (std::uint8_t i = 0; i < k_arity[opcode]; ++i) {
      if (!operands.read(&read)) {
        return std::unexpected(BeamError{"chunk Code: malformed operand of opcode " +
                                         std::to_string(opcode) + " at byte " + std::to_string(position)});
      }
    }
    if (!visit(opcode, read) || opcode == k_int_code_end) return {};
  }
  return std::unexpected(BeamError{"chunk Code: no int_code_end"});
}

std::expected<bool, BeamError> has_on_load(std::string_view bytes, const BeamInfo& info)
{
  bool found = false;
  auto walked = for_each_instruction(bytes, info, [&](std::uint8_t opcode, const std::vector<Operand>&) {
    found = opcode == k_on_load;
    return !found;
  });
  if (!walked) return std::unexpected(walked.error());
  return found;
}

} // namespace sandbox::beam
