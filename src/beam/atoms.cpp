#include "beam/byte_reader.h"
#include "beam/chunks.h"

#include <optional>

namespace sandbox::beam::detail {

namespace {

// The VM's limit on an atom, in characters.
constexpr std::size_t k_max_atom_characters = 255;
// Compact-term tag of an unsigned integer, the only tag the compiler uses
// for atom lengths.
constexpr unsigned k_tag_u = 0;

struct Tagged {
  unsigned tag = 0;
  std::uint64_t value = 0;
};

// Decodes one number in the compact term encoding of beam_asm:encode/2:
//   xxxx0ttt                 value xxxx (0..15)
//   xxx01ttt yyyyyyyy        value xxx << 8 | yyyyyyyy (0..2047)
//   nnn11ttt <n+2 bytes>     big-endian value in 2..8 bytes
//   11111ttt <u size> ...    9 or more bytes: never a plausible atom length
// Returns an explanation on failure.
std::expected<Tagged, std::string> read_compact(ByteReader& reader)
{
  auto first = reader.u8();
  if (!first) {
    return std::unexpected("is cut short");
  }
  Tagged out;
  out.tag = *first & 0x07u;
  if ((*first & 0x08u) == 0) {
    out.value = *first >> 4;
    return out;
  }
  if ((*first & 0x10u) == 0) {
    auto low = reader.u8();
    if (!low) {
      return std::unexpected("is cut short");
    }
    out.value = (static_cast<std::uint64_t>(*first >> 5) << 8) | *low;
    return out;
  }
  const unsigned size_code = *first >> 5;
  if (size_code == 7) {
    return std::unexpected("uses the 9-or-more-byte number form");
  }
  auto digits = reader.bytes(size_code + 2);
  if (!digits) {
    return std::unexpected("is cut short");
  }
  for (char c : *digits) {
    out.value = (out.value << 8) | static_cast<std::uint8_t>(c);
  }
  return out;
}

// Counts code points, rejecting overlong forms, surrogates and values above
// U+10FFFF as the VM's erts_analyze_utf8 does. On failure returns the offset
// of the first byte of the bad sequence.
std::expected<std::size_t, std::size_t> count_utf8(std::string_view text)
{
  std::size_t count = 0;
  std::size_t i = 0;
  const auto byte_at = [&](std::size_t at) { return static_cast<std::uint8_t>(text[at]); };
  while (i < text.size()) {
    const std::uint8_t lead = byte_at(i);
    std::size_t length = 0;
    std::uint8_t low = 0x80;
    std::uint8_t high = 0xbf; // allowed range of the second byte
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead == 0xe0) {
        low = 0xa0; // overlong below U+0800
      } else if (lead == 0xed) {
        high = 0x9f; // surrogates U+D800..U+DFFF
      }
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead == 0xf0) {
        low = 0x90; // overlong below U+10000
      } else if (lead == 0xf4) {
        high = 0x8f; // above U+10FFFF
      }
    } else {
      return std::unexpected(i);
    }
    if (length > text.size() - i) {
      return std::unexpected(i);
    }
    for (std::size_t k = 1; k < length; ++k) {
      const std::uint8_t b = byte_at(i + k);
      const std::uint8_t lo = k == 1 ? low : 0x80;
      const std::uint8_t hi = k == 1 ? high : 0xbf;
      if (b < lo || b > hi) {
        return std::unexpected(i);
      }
    }
    i += length;
    ++count;
  }
  return count;
}

// The legacy Atom chunk holds Latin-1; BeamInfo reports every atom as UTF-8
// so names compare the same whichever chunk they came from.
std::string latin1_to_utf8(std::string_view text)
{
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<std::uint8_t>(c);
    if (byte < 0x80) {
      out += c;
    } else {
      out += static_cast<char>(0xc0 | (byte >> 6));
      out += static_cast<char>(0x80 | (byte & 0x3f));
    }
  }
  return out;
}

} // namespace

std::expected<std::vector<std::string>, BeamError>
parse_atom_table(std::string_view id, std::string_view data, bool utf8, const Limits& limits)
{
  const std::string prefix = "chunk " + std::string(id) + ": ";
  const auto fail = [&](const std::string& what) {
    return std::unexpected(BeamError{prefix + what});
  };
  ByteReader reader(data);
  auto raw_count = reader.u32();
  if (!raw_count) {
    return fail(std::to_string(data.size()) + " bytes, too short for the atom count");
  }
  // OTP 28 writes the count negated when lengths are compact-term encoded
  // (atoms may then be longer than 255 bytes of UTF-8).
  const bool compact_lengths = (*raw_count & 0x80000000u) != 0;
  const std::uint64_t count =
      compact_lengths ? (std::uint64_t{1} << 32) - *raw_count : std::uint64_t{*raw_count};
  if (count == 0) {
    return fail("the atom table is empty, but atom 1 must name the module");
  }
  if (count > limits.max_atoms) {
    return fail("declares " + std::to_string(count) + " atoms, more than the limit of " +
                std::to_string(limits.max_atoms));
  }
  // Every atom takes at least its length byte: this bounds the reservation
  // below by the chunk size, whatever the count says.
  if (count > reader.remaining()) {
    return fail("declares " + std::to_string(count) + " atoms but only " +
                std::to_string(reader.remaining()) + " bytes follow");
  }
  const std::size_t max_bytes = utf8 ? k_max_atom_characters * 4 : k_max_atom_characters;

  std::vector<std::string> atoms;
  atoms.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t n = 1; n <= count; ++n) {
    const std::string atom_name = "atom " + std::to_string(n);
    std::uint64_t length = 0;
    if (compact_lengths) {
      auto tagged = read_compact(reader);
      if (!tagged) {
        return fail("the length of " + atom_name + " " + tagged.error());
      }
      if (tagged->tag != k_tag_u) {
        return fail("the length of " + atom_name + " has compact-term tag " +
                    std::to_string(tagged->tag) + ", expected 0 (u)");
      }
      length = tagged->value;
    } else {
      auto byte = reader.u8();
      if (!byte) {
        return fail("the length of " + atom_name + " is cut short");
      }
      length = *byte;
    }
    if (length > max_bytes) {
      return fail(atom_name + " is " + std::to_string(length) +
                  " bytes, more than 255 characters can take");
    }
    auto text = reader.bytes(static_cast<std::size_t>(length));
    if (!text) {
      return fail(atom_name + " declares " + std::to_string(length) + " bytes but only " +
                  std::to_string(reader.remaining()) + " remain");
    }
    if (utf8) {
      auto characters = count_utf8(*text);
      if (!characters) {
        return fail(atom_name + " is not valid UTF-8 (bad sequence at byte " +
                    std::to_string(characters.error()) + ")");
      }
      if (*characters > k_max_atom_characters) {
        return fail(atom_name + " has " + std::to_string(*characters) +
                    " characters, more than 255");
      }
    }
    atoms.push_back(utf8 ? std::string(*text) : latin1_to_utf8(*text));
  }
  if (!reader.at_end()) {
    return fail(std::to_string(reader.remaining()) + " bytes after the last atom");
  }
  if (atoms.front().empty()) {
    return fail("atom 1, the module name, is empty");
  }
  return atoms;
}

} // namespace sandbox::beam::detail
