#include "compiler/sandbox_path.h"

#include "util/fs.h"

#include <sys/stat.h>
#include <unistd.h>

namespace sandbox::compiler {

std::expected<fs::path, core::InvalidSandboxPath> resolve_sandbox(const std::string& path)
{
  if (path.empty()) {
    return std::unexpected(core::InvalidSandboxPath{path, "empty path"});
  }
  if (path.find('\0') != std::string::npos) {
    return std::unexpected(core::InvalidSandboxPath{path, "path contains a NUL byte"});
  }
  std::error_code ec;
  auto resolved = fs::canonical(fs::absolute(path, ec), ec);
  if (ec) {
    return std::unexpected(core::InvalidSandboxPath{path, "does not exist or cannot be resolved: " + ec.message()});
  }
  auto status = fs::status(resolved, ec);
  if (ec || !fs::is_directory(status)) {
    return std::unexpected(core::InvalidSandboxPath{path, "is not a directory"});
  }
  if (resolved == "/") {
    return std::unexpected(core::InvalidSandboxPath{path, "the file-system root cannot be a sandbox"});
  }
  if (::access(resolved.c_str(), R_OK | X_OK) != 0) {
    return std::unexpected(core::InvalidSandboxPath{path, "is not readable"});
  }
  return resolved;
}

std::expected<std::vector<fs::path>, core::InvalidSandboxPath>
resolve_source_files(const fs::path& sandbox, const std::vector<std::string>& files)
{
  std::vector<fs::path> out;
  for (const auto& file : files) {
    if (file.empty() || file.find('\0') != std::string::npos) {
      return std::unexpected(core::InvalidSandboxPath{file, "bad source file name"});
    }
    fs::path candidate = fs::path(file).is_absolute() ? fs::path(file) : sandbox / file;
    std::error_code ec;
    auto resolved = fs::canonical(candidate, ec);
    if (ec) {
      return std::unexpected(core::InvalidSandboxPath{file, "source file does not exist: " + ec.message()});
    }
    if (!util::is_within(sandbox, resolved) || resolved == sandbox) {
      return std::unexpected(core::InvalidSandboxPath{file, "source file resolves outside the sandbox (" + resolved.string() + ")"});
    }
    if (!fs::is_regular_file(resolved, ec)) {
      return std::unexpected(core::InvalidSandboxPath{file, "source file is not a regular file"});
    }
    out.push_back(resolved.lexically_relative(sandbox));
  }
  return out;
}

} // namespace sandbox::compiler
