#include "beam/byte_reader.h"
#include "beam/chunks.h"

#include <unordered_map>

namespace sandbox::beam::detail {

namespace {

constexpr std::size_t k_form_header_size = 12; // "FOR1" <u32 length> "BEAM"
constexpr std::size_t k_chunk_header_size = 8; // <4-byte id> <u32 size>

BeamError container_error(std::string reason)
{
  return BeamError{std::move(reason)};
}

} // namespace

std::string printable(std::string_view text)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += digits[byte >> 4];
      out += digits[byte & 0xf];
    }
  }
  return out;
}

std::expected<std::vector<Chunk>, BeamError> split_chunks(std::string_view bytes,
                                                          const Limits& limits)
{
  if (bytes.size() > limits.max_file_bytes) {
    return std::unexpected(container_error("file is " + std::to_string(bytes.size()) +
                                           " bytes, more than the limit of " +
                                           std::to_string(limits.max_file_bytes)));
  }
  if (bytes.empty()) {
    return std::unexpected(container_error("file is empty"));
  }
  if (bytes.size() < 4 || bytes.substr(0, 4) != "FOR1") {
    return std::unexpected(container_error("not a BEAM file: starts with '" +
                                           printable(bytes.substr(0, 4)) + "', expected 'FOR1'"));
  }
  if (bytes.size() < k_form_header_size) {
    return std::unexpected(
        container_error("file is " + std::to_string(bytes.size()) + " bytes, too short for the " +
                        std::to_string(k_form_header_size) + "-byte FOR1 header"));
  }
  ByteReader reader(bytes);
  (void)reader.bytes(4);
  const std::uint32_t form_length = *reader.u32();
  // The length counts everything after itself; the loader tolerates trailing
  // bytes but nothing the compiler writes has any, so they are refused.
  const std::uint64_t actual = bytes.size() - 8;
  if (form_length != actual) {
    return std::unexpected(container_error("FOR1 header declares " + std::to_string(form_length) +
                                           " bytes but the file holds " + std::to_string(actual) +
                                           " after it"));
  }
  const auto form_type = *reader.bytes(4);
  if (form_type != "BEAM") {
    return std::unexpected(
        container_error("IFF form type is '" + printable(form_type) + "', expected 'BEAM'"));
  }

  std::vector<Chunk> chunks;
  std::unordered_map<std::string, std::size_t> offsets; // id -> header offset
  while (!reader.at_end()) {
    const std::size_t header_offset = reader.position();
    if (reader.remaining() < k_chunk_header_size) {
      return std::unexpected(container_error(
          "chunk header at offset " + std::to_string(header_offset) +
          " is cut short: " + std::to_string(reader.remaining()) + " bytes left, 8 needed"));
    }
    std::string id(*reader.bytes(4));
    const std::uint32_t size = *reader.u32();
    // 64-bit arithmetic: size + 3 cannot wrap for a 32-bit size.
    const std::uint64_t padded = (static_cast<std::uint64_t>(size) + 3) & ~std::uint64_t{3};
    if (padded > reader.remaining()) {
      return std::unexpected(container_error(
          "chunk " + printable(id) + " at offset " + std::to_string(header_offset) + " declares " +
          std::to_string(size) + " bytes (" + std::to_string(padded) + " with padding) but only " +
          std::to_string(reader.remaining()) + " remain"));
    }
    const std::size_t data_offset = reader.position();
    (void)reader.bytes(static_cast<std::size_t>(padded));
    if (auto [it, inserted] = offsets.emplace(id, header_offset); !inserted) {
      return std::unexpected(container_error(
          "chunk " + printable(id) + " appears twice (at offsets " + std::to_string(it->second) +
          " and " + std::to_string(header_offset) + ")"));
    }
    // A file may be up to 2^32 + 7 bytes (a u32 length plus the 8-byte
    // prefix), so a last empty chunk could start past what Chunk::offset holds.
    if (data_offset > UINT32_MAX) {
      return std::unexpected(container_error("chunk " + printable(id) + " starts at offset " +
                                             std::to_string(data_offset) +
                                             ", beyond the 4 GiB a BEAM file can address"));
    }
    chunks.push_back(Chunk{std::move(id), static_cast<std::uint32_t>(data_offset), size});
  }
  return chunks;
}

} // namespace sandbox::beam::detail
