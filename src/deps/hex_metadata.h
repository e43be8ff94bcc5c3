#pragma once
// metadata.config of a Hex package tarball, read as data (hex_tarball.cpp
// checks it against the lock), and the printing of archive bytes both share.

#include "deps/hex_tarball.h"

#include <expected>
#include <string>
#include <string_view>

namespace sandbox::deps {

// Names and contents from an archive, made safe to print: printable ASCII as
// is, other bytes as \xNN, cut at a readable length.
std::string printable(std::string_view text, std::size_t max = 200);

// The name, version, app and build tools metadata.config declares; errors
// name the line.
std::expected<PackageMetadata, std::string> read_metadata(std::string_view text);

} // namespace sandbox::deps
