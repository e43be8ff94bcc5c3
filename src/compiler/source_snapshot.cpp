#include "compiler/source_snapshot.h"

#include "util/fs.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sandbox::compiler {

bool readable_by_others(const fs::path& root)
{
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0 || (st.st_mode & 05) != 05) {
    return false;
  }
  auto tree = util::list_tree(root);
  if (!tree) {
    return false;
  }
  for (const auto& entry : *tree) {
    if (entry.type == fs::file_type::directory && (entry.mode & 05) != 05) {
      return false;
    }
    if (entry.type == fs::file_type::regular && (entry.mode & 04) == 0) {
      return false;
    }
  }
  return true;
}

std::expected<void, std::string> snapshot_tree(const fs::path& source, const fs::path& target,
                                               const SnapshotLimits& limits)
{
  auto tree = util::list_tree(source);
  if (!tree) {
    return std::unexpected(tree.error());
  }
  if (tree->size() > limits.max_entries) {
    return std::unexpected(fmt::format("the sandbox has more than {} entries", limits.max_entries));
  }
  std::error_code ec;
  bool created = fs::create_directory(target, ec);
  if (ec || (!created && (!fs::is_directory(fs::symlink_status(target, ec)) ||
                          !fs::is_empty(target, ec) || ec))) {
    return std::unexpected("cannot create " + target.string() + " (or it is not an empty directory)");
  }
  ::chmod(target.c_str(), 0755);
  std::uint64_t total = 0;
  // list_tree is sorted, so a directory comes before what it holds.
  for (const auto& entry : *tree) {
    auto from = source / entry.relative;
    auto to = target / entry.relative;
    switch (entry.type) {
    case fs::file_type::directory:
      fs::create_directory(to, ec);
      ::chmod(to.c_str(), 0755);
      break;
    case fs::file_type::regular:
    case fs::file_type::symlink: {
      if (entry.type == fs::file_type::regular) {
        total += entry.size;
        if (total > limits.max_total_bytes) {
          return std::unexpected(
            fmt::format("the sandbox holds more than {} bytes", limits.max_total_bytes));
        }
      }
      if (auto copied = copy_listed_entry(from, to, entry, limits.max_total_bytes); !copied) {
        return std::unexpected(copied.error());
      }
      break;
    }
    default:
      break; // fifos, sockets and devices are not sources
    }
    if (ec) {
      return std::unexpected("cannot copy " + entry.relative.string() + ": " + ec.message());
    }
  }
  return {};
}

std::expected<bool, std::string> copy_listed_entry(const fs::path& from, const fs::path& to,
                                                   const util::TreeEntry& entry, std::uint64_t max_bytes)
{
  std::error_code ec;
  if (entry.type == fs::file_type::regular) {
    auto data = util::read_file(from, max_bytes);
    if (data) {
      if (auto written = util::write_new_file(to, *data, 0644); !written) {
        return std::unexpected(written.error());
      }
      return true;
    }
    if (!fs::exists(fs::symlink_status(from, ec))) {
      return false;
    }
    return std::unexpected(data.error());
  }
  auto link = fs::read_symlink(from, ec);
  if (!ec) {
    fs::create_symlink(link, to, ec);
  }
  if (ec) {
    std::error_code gone;
    if (!fs::exists(fs::symlink_status(from, gone))) {
      return false;
    }
    return std::unexpected("cannot copy " + entry.relative.string() + ": " + ec.message());
  }
  return true;
}

} // namespace sandbox::compiler
