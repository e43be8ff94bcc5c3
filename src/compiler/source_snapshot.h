#pragma once
// A readable copy of the sandbox for jobs that run as an unprivileged user.
// When the engine runs as root the jailed job runs as another uid, which
// cannot read a sandbox made private (a 0700 directory, 0600 files, as
// mkdtemp and umask 077 make them). The engine then copies the tree, without
// following links and within caps, and binds the copy read-only instead.

#include "util/fs.h"

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>

namespace sandbox::compiler {

namespace fs = std::filesystem;

struct SnapshotLimits {
  std::uint64_t max_total_bytes = 256ull << 20;
  std::size_t max_entries = 50'000;
};

// True when every directory of the tree is world-searchable and readable and
// every regular file world-readable.
bool readable_by_others(const fs::path& root);

// Copies directories (0755), regular files (0644) and symlinks (as links,
// never followed) of `source` into `target`, which must not exist or be an
// empty directory (a worker's /sandbox bind).
std::expected<void, std::string> snapshot_tree(const fs::path& source, const fs::path& target,
                                               const SnapshotLimits& limits = {});

// Copies one entry list_tree gave, a regular file (0644, at most `max_bytes`)
// or a symlink (as a link), from `from` to `to`, which must not exist. False
// when it was removed since it was listed (a temporary file): not a source.
std::expected<bool, std::string> copy_listed_entry(const fs::path& from, const fs::path& to,
                                                   const util::TreeEntry& entry, std::uint64_t max_bytes);

} // namespace sandbox::compiler
