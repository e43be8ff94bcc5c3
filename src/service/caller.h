#pragma once
// Who is asking, and acting with that caller's rights. A shared service runs
// as root (it builds jails) while its clients are ordinary users. The engine
// never opens a caller's path with its own rights: it reads a caller's inputs
// into a private staging area with the caller's file-system credentials
// (per thread: setfsuid, setfsgid and setgroups through raw system calls,
// which glibc would otherwise apply to every thread), runs the job there,
// and writes outputs into the caller's directories, again as the caller, so
// they are the caller's files. A refusal is core::PermissionDenied and
// carries no byte of content. docs/security.md "A service many users share".

#include "core/error.h"

#include <sys/types.h>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::service {

namespace fs = std::filesystem;

struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups; // supplementary groups

  // Root keeps root's rights: its requests run as before, without staging.
  [[nodiscard]] bool privileged() const { return uid == 0; }
  [[nodiscard]] std::string describe() const;

  // This process (for `sandbox request`, which runs in the caller's process).
  static Caller of_process();
  // The peer of a connected Unix socket (SO_PEERCRED, SO_PEERGROUPS).
  static std::expected<Caller, std::string> of_socket(int fd);
};

// While alive, this thread opens, creates and stats files as `caller`; the
// engine's own credentials come back at destruction. Other threads are not
// affected, but a thread or process started while it is alive inherits the
// caller's credentials: keep its scope to the file operations themselves.
class ActingAs {
public:
  explicit ActingAs(const Caller& caller);
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;
  ~ActingAs();
  // False when the kernel refused the switch (the caller's rights are then not
  // in force and nothing may be opened for it).
  [[nodiscard]] bool active() const { return m_active; }

private:
  uid_t m_fsuid;
  gid_t m_fsgid;
  std::vector<gid_t> m_groups;
  bool m_active = false;
};

struct StageLimits {
  std::uint64_t max_total_bytes = 256ull << 20;
  std::size_t max_entries = 50'000;
  // Mirrors kept per caller: past it, the least recently used ones that no
  // request holds are removed (their lock files stay, empty, so a lock is
  // never taken on a file another request is about to replace).
  std::size_t max_mirrors = 16;
};

// The engine's copy of a caller's tree: <state>/callers/<uid>/<digest of the
// resolved path>/tree, kept between requests (so incremental compiles and the
// scan cache see a stable path) and brought up to date with the caller's rights
// on every request: a file the caller cannot read stops the request with
// permission_denied. Held under a lock for the request's life. The caller's own
// `.sandbox_cache` is left out: the copy has the engine's.
class Mirror {
public:
  static std::expected<Mirror, core::Error> sync(const Caller& caller, const std::string& path,
                                                 const StageLimits& limits = {});
  [[nodiscard]] const fs::path& tree() const { return m_tree; }
  [[nodiscard]] const fs::path& source() const { return m_source; } // resolved, as the caller sees it

private:
  fs::path m_tree;
  fs::path m_source;
  std::shared_ptr<int> m_lock; // flock'ed file descriptor, closed last
};

// Copies `file`, read as the caller, to `dir`/<its name>; returns the copy.
std::expected<fs::path, core::Error> stage_file(const Caller& caller, const std::string& file,
                                                const fs::path& dir);

// Writes each of `files` (engine-made) into `target` as the caller: the
// directory is created if missing (where the caller may create it), and every
// file is created by and owned by the caller. Returns the new paths.
std::expected<std::vector<fs::path>, core::Error>
deliver_files(const Caller& caller, const std::vector<fs::path>& files, const std::string& target);

// Gives an engine-made directory tree (a result's temp dir) to the caller,
// without following links, so the caller can read every file of its result.
std::expected<void, std::string> give_tree(const Caller& caller, const fs::path& dir);

// A temp dir the caller may clean up: one that belongs to the caller, seen
// with the caller's rights.
std::expected<void, core::Error> check_owns(const Caller& caller, const std::string& path);

} // namespace sandbox::service
