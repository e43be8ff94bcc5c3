#include "beam/byte_reader.h"
#include "beam/chunks.h"

#include <zlib.h>

#include <algorithm>

namespace sandbox::beam::detail {

namespace {

// First byte of every term_to_binary/1 result.
constexpr std::uint8_t k_external_term_version = 131;
// The output buffer starts small and doubles, so a file that declares a large
// size but holds little data costs little memory.
constexpr std::size_t k_initial_inflate_buffer = 64 * 1024;

class InflateStream {
public:
  InflateStream() = default;
  InflateStream(const InflateStream&) = delete;
  InflateStream& operator=(const InflateStream&) = delete;
  ~InflateStream()
  {
    if (m_initialized) {
      inflateEnd(&m_stream);
    }
  }

  bool init()
  {
    m_initialized = inflateInit(&m_stream) == Z_OK;
    return m_initialized;
  }
  z_stream& stream() noexcept { return m_stream; }

private:
  z_stream m_stream{};
  bool m_initialized = false;
};

std::string zlib_message(const z_stream& stream, int code)
{
  if (stream.msg != nullptr) {
    return stream.msg;
  }
  return "zlib error " + std::to_string(code);
}

// Inflates a zlib stream that must produce exactly `expected` bytes. Output
// is never allowed past expected + 1 bytes: one extra byte is enough to know
// the data inflates to more than declared.
std::expected<std::string, std::string> inflate_exact(std::string_view input, std::size_t expected)
{
  InflateStream inflater;
  if (!inflater.init()) {
    return std::unexpected("cannot initialise zlib");
  }
  z_stream& zs = inflater.stream();
  // The chunk size is a u32, so the input always fits in zlib's uInt.
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  zs.avail_in = static_cast<uInt>(input.size());

  const std::size_t cap = expected + 1;
  std::string out;
  std::size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      const std::size_t grown = std::min(cap, std::max(k_initial_inflate_buffer, out.size() * 2));
      out.resize(grown);
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, UINT32_MAX));
    const uInt out_before = zs.avail_out;
    const uInt in_before = zs.avail_in;
    const int code = inflate(&zs, Z_NO_FLUSH);
    produced += out_before - zs.avail_out;
    if (produced > expected) {
      return std::unexpected("inflates to more than the declared " + std::to_string(expected) +
                             " bytes");
    }
    if (code == Z_STREAM_END) {
      break;
    }
    if (code == Z_BUF_ERROR && zs.avail_in == 0) {
      return std::unexpected("zlib data ends early, after " + std::to_string(produced) + " of " +
                             std::to_string(expected) + " bytes");
    }
    // zlib reports no progress with room on both sides only on internal
    // errors; bail out rather than spin.
    if (code == Z_BUF_ERROR && zs.avail_in == in_before && zs.avail_out == out_before) {
      return std::unexpected("zlib made no progress after " + std::to_string(produced) + " bytes");
    }
    if (code == Z_NEED_DICT) {
      return std::unexpected("zlib data is corrupt: it asks for a preset dictionary");
    }
    if (code != Z_OK && code != Z_BUF_ERROR) {
      return std::unexpected("zlib data is corrupt: " + zlib_message(zs, code));
    }
  }
  if (produced != expected) {
    return std::unexpected("inflates to " + std::to_string(produced) + " bytes but declares " +
                           std::to_string(expected));
  }
  if (zs.avail_in != 0) {
    return std::unexpected(std::to_string(zs.avail_in) + " bytes after the end of the zlib data");
  }
  out.resize(produced);
  return out;
}

} // namespace

std::expected<std::uint64_t, BeamError> parse_literal_table(std::string_view data,
                                                            const Limits& limits)
{
  const std::string prefix = "chunk LitT: ";
  const auto fail = [&](const std::string& what) {
    return std::unexpected(BeamError{prefix + what});
  };
  ByteReader reader(data);
  auto declared = reader.u32();
  if (!declared) {
    return fail(std::to_string(data.size()) + " bytes, too short for the uncompressed size");
  }
  // Checked before anything is allocated or inflated.
  if (*declared > limits.max_literal_bytes) {
    return fail("declares " + std::to_string(*declared) +
                " uncompressed bytes, more than the limit of " +
                std::to_string(limits.max_literal_bytes));
  }
  // The compiler always compresses (even OTP 28 has no uncompressed form),
  // and the inflated table starts with a 4-byte count.
  if (*declared < 4) {
    return fail("declares " + std::to_string(*declared) +
                " uncompressed bytes, too few for the literal count");
  }
  auto inflated = inflate_exact(*reader.bytes(reader.remaining()), *declared);
  if (!inflated) {
    return fail(inflated.error());
  }

  ByteReader table(*inflated);
  const std::uint32_t count = *table.u32();
  // Each literal takes at least its 4-byte size.
  if (count > table.remaining() / 4) {
    return fail("declares " + std::to_string(count) + " literals but only " +
                std::to_string(table.remaining()) + " bytes follow");
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string entry = "literal " + std::to_string(i);
    auto size = table.u32();
    if (!size) {
      return fail("the size of " + entry + " is cut short");
    }
    auto term = table.bytes(*size);
    if (!term) {
      return fail(entry + " declares " + std::to_string(*size) + " bytes but only " +
                  std::to_string(table.remaining()) + " remain");
    }
    if (term->empty() || static_cast<std::uint8_t>(term->front()) != k_external_term_version) {
      return fail(entry + " does not start with the external term format version byte 131");
    }
  }
  if (!table.at_end()) {
    return fail(std::to_string(table.remaining()) + " bytes after the last literal");
  }
  return count;
}

} // namespace sandbox::beam::detail
