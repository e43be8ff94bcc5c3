#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace sandbox::util {

// Serialises JSON for output. File names are bytes, not always UTF-8: invalid
// sequences are replaced with U+FFFD instead of throwing.
inline std::string dump_json(const nlohmann::json& value, int indent = -1)
{
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace sandbox::util
