#pragma once
// Hex package tarballs (format 3, hexpm/specifications package_tarball.md):
// checked against the lock entry that pins them, then unpacked by the engine
// itself, refusing every entry that could land outside the destination.

#include "core/error.h"
#include "deps/mix_lock.h"

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::deps {

namespace fs = std::filesystem;

struct UnpackLimits {
  std::uint64_t max_tarball_bytes = 64ull << 20;  // the outer tar file
  std::uint64_t max_total_bytes = 256ull << 20;   // all unpacked files together
  std::uint64_t max_file_bytes = 64ull << 20;     // one unpacked file
  std::uint64_t max_files = 10'000;               // files and directories
  std::uint64_t max_metadata_bytes = 1ull << 20;  // metadata.config
};

// What metadata.config says, as far as the engine uses it.
struct PackageMetadata {
  std::string name;
  std::string version;
  std::string app;
  std::vector<std::string> build_tools;
};

// Lower-case hex sha256 of a file's bytes.
std::expected<std::string, std::string> sha256_file(const fs::path& file);

// Checks `tarball` against `lock`: sha256 of the whole file == outer checksum;
// the outer tar holds exactly VERSION ("3"), CHECKSUM, metadata.config and
// contents.tar.gz as regular files; CHECKSUM == sha256(VERSION ++
// metadata.config ++ contents.tar.gz) == the lock's inner checksum;
// metadata.config names lock.package and lock.version. Then unpacks
// contents.tar.gz into `dest` (created; must not exist): regular files and
// directories only, relative paths without `..`, within the limits. On any
// failure `dest` is removed and the error says which check failed, with the
// expected and actual values where there are some.
std::expected<PackageMetadata, core::DependencyVerificationFailed>
verify_and_unpack(const fs::path& tarball, const HexLock& lock, const fs::path& dest,
                  const UnpackLimits& limits = {});

} // namespace sandbox::deps
