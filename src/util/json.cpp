#include "util/json.h"

#include <fmt/format.h>

namespace sandbox::util {

namespace {

using nlohmann::json;

constexpr char kMarker = '\0';

// Length of the well-formed UTF-8 sequence starting at `at` (Unicode table
// 3-7), or 0 when the bytes there are not one.
std::size_t sequence_length(std::string_view s, std::size_t at)
{
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char lead = byte(at);
  if (lead < 0x80) {
    return 1;
  }
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
    high = lead == 0xED ? 0x9F : 0xBF; // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;  // no overlong forms
    high = lead == 0xF4 ? 0x8F : 0xBF; // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - at < length || byte(at + 1) < low || byte(at + 1) > high) {
    return 0;
  }
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(at + i) < 0x80 || byte(at + i) > 0xBF) {
      return 0;
    }
  }
  return length;
}

int hex_value(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

} // namespace

bool valid_utf8(std::string_view bytes)
{
  for (std::size_t at = 0; at < bytes.size();) {
    auto length = sequence_length(bytes, at);
    if (length == 0) {
      return false;
    }
    at += length;
  }
  return true;
}

std::string escape_bytes(std::string_view bytes)
{
  if ((bytes.empty() || bytes.front() != kMarker) && valid_utf8(bytes)) {
    return std::string(bytes);
  }
  std::string out(1, kMarker);
  out.reserve(bytes.size() + 8);
  for (std::size_t at = 0; at < bytes.size();) {
    if (bytes[at] == '\\') {
      out += "\\\\";
      ++at;
      continue;
    }
    auto length = bytes[at] == '\0' ? 0 : sequence_length(bytes, at);
    if (length == 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(bytes[at]));
      ++at;
      continue;
    }
    out.append(bytes.substr(at, length));
    at += length;
  }
  return out;
}

std::expected<std::string, std::string> unescape_bytes(std::string_view text)
{
  if (text.empty() || text.front() != kMarker) {
    return std::string(text);
  }
  std::string out;
  out.reserve(text.size());
  for (std::size_t at = 1; at < text.size();) {
    char c = text[at];
    if (c == kMarker) {
      return std::unexpected("a NUL inside an escaped byte string");
    }
    if (c != '\\') {
      out += c;
      ++at;
    } else if (at + 1 < text.size() && text[at + 1] == '\\') {
      out += '\\';
      at += 2;
    } else if (at + 3 < text.size() && text[at + 1] == 'x' && hex_value(text[at + 2]) >= 0 &&
               hex_value(text[at + 3]) >= 0) {
      out += static_cast<char>(hex_value(text[at + 2]) * 16 + hex_value(text[at + 3]));
      at += 4;
    } else {
      return std::unexpected("a bad escape in an escaped byte string");
    }
  }
  // Only escape_bytes' own output is accepted: one JSON text per byte string.
  if (escape_bytes(out) != text) {
    return std::unexpected("an escaped byte string not in its canonical form");
  }
  return out;
}

json escape_strings(const json& value)
{
  if (value.is_string()) {
    return escape_bytes(value.get_ref<const std::string&>());
  }
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it) {
      out[escape_bytes(it.key())] = escape_strings(it.value());
    }
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (const auto& item : value) {
      out.push_back(escape_strings(item));
    }
    return out;
  }
  return value;
}

std::expected<json, std::string> unescape_strings(const json& value)
{
  if (value.is_string()) {
    auto bytes = unescape_bytes(value.get_ref<const std::string&>());
    if (!bytes) {
      return std::unexpected(bytes.error());
    }
    return json(std::move(*bytes));
  }
  if (!value.is_object() && !value.is_array()) {
    return value;
  }
  json out = value.is_object() ? json::object() : json::array();
  for (auto it = value.begin(); it != value.end(); ++it) {
    auto item = unescape_strings(it.value());
    if (!item) {
      return std::unexpected(item.error());
    }
    if (value.is_array()) {
      out.push_back(std::move(*item));
      continue;
    }
    auto key = unescape_bytes(it.key());
    if (!key) {
      return std::unexpected(key.error());
    }
    out[*key] = std::move(*item);
  }
  return out;
}

} // namespace sandbox::util
