#pragma once
// The engine's own state directory and secret key. Jobs never see either: the
// jail does not bind the state directory, so what the key authenticates
// (temp-dir markers, cache entries) cannot be forged from inside a sandbox.

#include <sys/types.h>

#include <expected>
#include <filesystem>
#include <optional>
#include <string>

namespace sandbox::compiler {

namespace fs = std::filesystem;

// $SANDBOX_STATE_DIR, else $XDG_STATE_HOME/sandbox, else ~/.local/state/sandbox.
fs::path state_dir();

// 32 random bytes kept in <state_dir>/key (mode 0600), created on first use.
std::expected<std::string, std::string> engine_key();

// Creates a job temp dir (0700) under `parent` and writes its marker: an HMAC
// of the directory's resolved path, device and inode under the engine key.
std::expected<fs::path, std::string> create_marked_temp_dir(const fs::path& parent);

// True when `path` is a directory this engine created (its marker verifies)
// and that belongs to `owner` (by default the engine's user; a shared service
// gives a caller's results to the caller).
std::expected<void, std::string> verify_temp_dir_marker(const fs::path& path,
                                                        std::optional<uid_t> owner = std::nullopt);

} // namespace sandbox::compiler
