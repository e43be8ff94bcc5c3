#pragma once
// Small file helpers packages.cpp and package_store.cpp share.

#include <expected>
#include <filesystem>
#include <string>

namespace sandbox::compiler::package_files {

namespace fs = std::filesystem;

inline std::expected<void, std::string> make_dirs(const fs::path& dir)
{
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return std::unexpected("cannot create " + dir.string() + ": " + ec.message());
  }
  return {};
}

// A directory, not a link to one.
inline bool is_dir(const fs::path& path)
{
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(path, ec));
}

} // namespace sandbox::compiler::package_files
