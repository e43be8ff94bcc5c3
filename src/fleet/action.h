#pragma once
// What the fleet stores and sends, as data: a tree as content digests, the
// blobs behind them, the key of an action, the envelopes that authenticate
// what a node writes to the store with the fleet key, and the placeholders
// that make a result independent of the paths of the node that produced it.
// Nothing here talks to Redis or runs a compile.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::fleet {

namespace fs = std::filesystem;

// Caps on what a node sends or accepts: a tree past them is compiled where it
// was asked; an entry past them is refused.
inline constexpr std::size_t kMaxTreeEntries = 10'000;
inline constexpr std::uint64_t kMaxTreeBytes = 64ull << 20;
inline constexpr std::uint64_t kMaxBlobBytes = 64ull << 20;
inline constexpr std::uint64_t kMaxEnvelopeBytes = 16ull << 20;

struct TreeFile {
  std::string path;   // relative, '/'-separated, checked by safe_relative_path
  char kind = 'f';    // 'f' file, 'x' executable file, 'd' directory
  std::string digest; // sha256 hex of the content (files)
  std::uint64_t size = 0;
};

struct Tree {
  std::vector<TreeFile> files; // sorted by path
  std::uint64_t bytes = 0;
};

// Reads the tree under `root`: regular files with their digests (contents
// into `blobs`, by digest) and directories. A symlink, a special file or a
// tree past the caps is a reason to compile locally (the error).
std::expected<Tree, std::string> read_tree(const fs::path& root, std::map<std::string, std::string>& blobs);

// A relative path a node may create under a directory of its own: no empty,
// `.` or `..` component, not absolute, no NUL, bounded lengths.
bool safe_relative_path(std::string_view path);

nlohmann::json tree_to_json(const Tree& tree);
std::expected<Tree, std::string> tree_from_json(const nlohmann::json& value);

// Writes `tree` under `root` (which must exist and be empty) from `blobs`,
// each checked against its digest; nothing is followed or overwritten.
std::expected<void, std::string> write_tree(const Tree& tree, const std::map<std::string, std::string>& blobs,
                                            const fs::path& root);

// The regular files of a finished compile's temp dir (its marker excluded),
// as a tree whose contents go into `blobs`.
std::expected<Tree, std::string> read_outputs(const fs::path& temp_dir, std::map<std::string, std::string>& blobs);

// The key of an action: sha256 over its canonical description.
std::string action_key(const nlohmann::json& description);

// Replaces every occurrence of `from` inside the strings of `value` with `to`.
void replace_in_strings(nlohmann::json& value, std::string_view from, std::string_view to);

inline constexpr std::string_view kTempToken = "@SANDBOX_FLEET_TEMP@";
inline constexpr std::string_view kSourceToken = "@SANDBOX_FLEET_SOURCE@";

// An envelope: "sbx1 " HMAC " " body, the HMAC under the fleet key over the
// namespace, the kind of entry, its name and the body, so an entry is valid
// only where it was written.
std::string seal(std::string_view key, std::string_view ns, std::string_view kind, std::string_view name,
                 std::string_view body);
std::expected<std::string, std::string> unseal(std::string_view key, std::string_view ns, std::string_view kind,
                                               std::string_view name, std::string_view text);

} // namespace sandbox::fleet
