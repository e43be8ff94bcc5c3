#pragma once
// The jail's file system: which host paths appear where, computed in the
// engine as a plain list (MountPlan) and applied inside the new mount
// namespace from pre-built C strings (PreparedMounts), so the child never
// allocates.

#include "jail/process.h"

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <vector>

namespace sandbox::jail {

enum class MountKind {
  dir,       // mkdir in the new root (an ancestor of something else)
  symlink,   // a symlink copied from the host (merged /usr: /bin -> usr/bin)
  bind_ro,   // read-only, nosuid, nodev bind of a host file or directory
  bind_rw,   // writable, nosuid, nodev bind (the job's temp dir)
  dev_bind,  // a host device node (/dev/null, ...) bound read-write, nosuid, noexec
  tmpfs,     // a size- and inode-limited tmpfs (data holds the options)
  proc,      // a fresh procfs of the jail's pid namespace (data holds the options)
  file,      // a generated file (data holds the content): /etc/passwd, ...
  read_only, // remount an earlier mount read-only once it is populated (/dev)
};

std::string_view to_string(MountKind kind);

struct MountOp {
  MountKind kind = MountKind::dir;
  fs::path target;  // inside the jail
  fs::path source;  // host path (binds), link text (symlink)
  std::string data; // tmpfs/proc options or file content
  bool source_is_dir = false;
  bool allow_devices = false; // tmpfs without nodev: only /dev, whose nodes are binds
  bool operator==(const MountOp&) const = default;
};

struct MountOptions {
  // Toolchain paths made visible read-only; symlinks on the way are recreated,
  // the final file or directory is bound. Missing paths are skipped.
  std::vector<fs::path> toolchain = default_toolchain();
  std::uint64_t tmp_bytes = 64ull << 20;
  std::uint64_t tmp_inodes = 16384;
  std::uint32_t inside_uid = 1000;
  std::uint32_t inside_gid = 1000;
  std::string user_name = "sandbox";
  std::string hostname = "sandbox";
  std::string home = "/job";

  // The system's Erlang and Elixir (/usr/lib/erlang, /usr/lib/elixir and
  // their /usr/bin links) and system_base().
  static std::vector<fs::path> default_toolchain();
  // What any toolchain needs: the shared libraries, sh and the coreutils the
  // erl/elixir/mix scripts call, ld.so.cache, the C.UTF-8 locale.
  static std::vector<fs::path> system_base();
  // The system's Erlang/OTP: /usr/lib/erlang, /usr/bin/{erl,erlc,escript}.
  static std::vector<fs::path> system_erlang();
};

struct MountPlan {
  std::vector<MountOp> ops; // in the order they are applied
};

// Resolves toolchain symlinks on the host, adds /dev, /proc, /tmp, /etc and
// the spec's binds. Errors: a bind whose host path is missing, an inside path
// that is relative, contains "..", or lies under a read-only toolchain bind.
std::expected<MountPlan, std::string> build_mount_plan(const ProcessSpec& spec,
                                                       const MountOptions& options);

// The generated /etc files.
std::string passwd_content(const MountOptions& options);
std::string group_content(const MountOptions& options);

// One step for the child, all strings owned by PreparedMounts.
struct RawMountOp {
  MountKind kind;
  const char* source; // "/oldroot/<host>" for binds
  const char* target; // "/newroot/<inside>"
  const char* data;
  std::size_t data_len;
  bool source_is_dir;
  bool allow_devices;
  // Binds of host directories: the source is opened (O_PATH) before the
  // child changes its uid and kept at fd `source_fd`; the bind then goes
  // through "/oldroot/proc/self/fd/<source_fd>" (`fd_source`), so a source
  // under a directory only the engine may traverse (a 0700 temp dir) still
  // binds. -1 when unused.
  const char* host_path = nullptr;
  const char* fd_source = nullptr;
  int source_fd = -1;
};

// First fd number used for bind sources held open across the uid change.
inline constexpr int kBindSourceFdBase = 600;

// Opens each bind source of `mounts` at its fixed fd (close-on-exec). Called in
// the child before it drops to the job's uid; allocation-free.
bool open_bind_sources(const std::vector<RawMountOp>& ops);
// Closes them once the mounts are done.
void close_bind_sources(const std::vector<RawMountOp>& ops);

// Owns the C strings of a plan; ops() stays valid while this object lives and
// is not moved-from.
class PreparedMounts {
public:
  explicit PreparedMounts(const MountPlan& plan);
  PreparedMounts(const PreparedMounts&) = delete;
  PreparedMounts& operator=(const PreparedMounts&) = delete;
  [[nodiscard]] const std::vector<RawMountOp>& ops() const { return m_ops; }

private:
  std::vector<std::string> m_strings;
  std::vector<RawMountOp> m_ops;
};

// Steps the child reports on failure (index into mount_stage_name).
enum class MountStage : int {
  make_private,
  stage_tmpfs,
  stage_pivot,
  root_tmpfs,
  mkdir,
  symlink,
  bind,
  remount_bind,
  tmpfs,
  proc,
  write_file,
  detach_oldroot,
  final_pivot,
  remount_root,
};
const char* mount_stage_name(MountStage stage);

// Runs in the child after clone, in the new user and mount namespaces: builds
// the new root from the prepared ops and pivots into it. Never allocates.
// On failure returns false with *stage set and errno preserved.
bool apply_mounts(const PreparedMounts& mounts, std::uint64_t root_bytes, MountStage* stage);

} // namespace sandbox::jail
