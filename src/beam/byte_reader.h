#pragma once
// Bounds-checked big-endian cursor over a chunk. Every read either succeeds
// entirely or leaves the cursor where it was and reports failure, so parsers
// never index past the end of a buffer whatever the file declares.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sandbox::beam::detail {

class ByteReader {
public:
  explicit ByteReader(std::string_view data) noexcept : m_data(data) {}

  [[nodiscard]] std::size_t position() const noexcept { return m_pos; }
  [[nodiscard]] std::size_t remaining() const noexcept { return m_data.size() - m_pos; }
  [[nodiscard]] bool at_end() const noexcept { return m_pos == m_data.size(); }

  std::optional<std::uint8_t> u8() noexcept
  {
    if (remaining() < 1) {
      return std::nullopt;
    }
    return static_cast<std::uint8_t>(m_data[m_pos++]);
  }

  std::optional<std::uint32_t> u32() noexcept
  {
    if (remaining() < 4) {
      return std::nullopt;
    }
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      value = (value << 8) | static_cast<std::uint8_t>(m_data[m_pos++]);
    }
    return value;
  }

  // Compared as `size > remaining()`, never as `m_pos + size > end`, so a
  // size near SIZE_MAX cannot wrap around.
  std::optional<std::string_view> bytes(std::size_t size) noexcept
  {
    if (size > remaining()) {
      return std::nullopt;
    }
    auto out = m_data.substr(m_pos, size);
    m_pos += size;
    return out;
  }

private:
  std::string_view m_data;
  std::size_t m_pos = 0;
};

} // namespace sandbox::beam::detail
