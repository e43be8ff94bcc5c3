#pragma once

#include <string>
#include <string_view>

namespace sandbox::util {

// Lower-case hex SHA-256 of data.
std::string sha256_hex(std::string_view data);

// Lower-case hex HMAC-SHA-256 of data under key.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Compares two strings in time independent of where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// Bytes from the kernel's CSPRNG.
std::string random_bytes(std::size_t count);

} // namespace sandbox::util
