#include "compiler/package_harvest.h"

#include "compiler/packages_internal.h"
#include "util/fs.h"

#include <algorithm>

namespace sandbox::compiler {

namespace {

using package_files::is_dir;
using package_files::make_dirs;

// What one package's build may leave to be kept.
constexpr std::uint64_t kMaxBuildBytes = 256ull << 20;
constexpr std::size_t kMaxBuildFiles = 10'000;

} // namespace

std::expected<Harvest, std::string> harvest_build(const fs::path& work, const fs::path& relative,
                                                  const fs::path& target)
{
  auto built = work;
  for (const auto& part : relative) {
    built /= part;
    if (!is_dir(built)) {
      return std::unexpected(built.string() + " is not a directory");
    }
  }
  auto tree = util::list_tree(built);
  if (!tree) {
    return std::unexpected(tree.error());
  }
  Harvest out;
  std::uint64_t total = 0;
  std::size_t files = 0;
  for (const auto& entry : *tree) {
    auto top = entry.relative.begin()->string();
    if (top != "ebin" && top != ".mix") {
      continue; // priv and include are links into the sources: not kept
    }
    if (++files > kMaxBuildFiles || (total += entry.size) > kMaxBuildBytes) {
      return std::unexpected("the build left more files or bytes than a package may keep");
    }
    if (entry.type == fs::file_type::directory) {
      if (auto made = make_dirs(target / entry.relative); !made) {
        return std::unexpected(made.error());
      }
    } else if (entry.type == fs::file_type::regular) {
      auto bytes = util::read_file(built / entry.relative, 64ull << 20);
      if (!bytes) {
        return std::unexpected(bytes.error());
      }
      if (auto made = make_dirs((target / entry.relative).parent_path()); !made) {
        return std::unexpected(made.error());
      }
      if (auto written = util::write_file_atomic(target / entry.relative, *bytes, 0644); !written) {
        return std::unexpected(written.error());
      }
      if (top == "ebin" && entry.relative.extension() == ".beam") {
        out.beams.push_back(target / entry.relative);
      } else if (top == "ebin" && entry.relative.extension() == ".app") {
        out.apps.push_back(target / entry.relative);
      }
    }
  }
  return out;
}

Harvest stored_ebin(const fs::path& build)
{
  Harvest out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(build / "ebin", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    auto ext = it->path().extension();
    if (ext == ".beam") {
      out.beams.push_back(it->path());
    } else if (ext == ".app") {
      out.apps.push_back(it->path());
    }
  }
  std::sort(out.beams.begin(), out.beams.end());
  return out;
}

} // namespace sandbox::compiler
