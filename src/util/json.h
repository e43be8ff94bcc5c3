#pragma once

#include <nlohmann/json.hpp>

#include <expected>
#include <string>
#include <string_view>

namespace sandbox::util {

// Serialises JSON for output. File names are bytes, not always UTF-8: invalid
// sequences are replaced with U+FFFD instead of throwing.
inline std::string dump_json(const nlohmann::json& value, int indent = -1)
{
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// True when `bytes` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), the text JSON can hold.
bool valid_utf8(std::string_view bytes);

// Byte strings (file names above all) in JSON without loss. Stored state must
// round-trip exactly, which dump_json's replacement cannot do.
//
// A byte string that is valid UTF-8 and does not begin with NUL is its own
// JSON string, unchanged. Any other is written as NUL followed by its bytes,
// with `\` doubled and NUL and each byte that is not part of a valid UTF-8
// sequence written `\xHH` (lower-case hex): "lib/caf\xE9.ex" becomes
// "\u0000lib/caf\\xe9.ex" in the JSON text. No file name contains NUL, so a
// valid name is never altered and never read as an escaped one, however much
// it looks like one.
std::string escape_bytes(std::string_view bytes);
// The inverse of escape_bytes; fails on text escape_bytes cannot produce (a
// bad escape, a NUL-marked string that did not need escaping), so the mapping
// is one-to-one both ways.
std::expected<std::string, std::string> unescape_bytes(std::string_view text);

// escape_bytes / unescape_bytes applied to every string and object key of
// `value`, at any depth.
nlohmann::json escape_strings(const nlohmann::json& value);
std::expected<nlohmann::json, std::string> unescape_strings(const nlohmann::json& value);

} // namespace sandbox::util
