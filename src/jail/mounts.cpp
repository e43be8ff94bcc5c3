// Mount plan: computed on the host side, applied in the child without
// allocating. The new root is built bubblewrap-style: a staging tmpfs becomes
// the root with the host root at /oldroot, so every bind source is reachable
// as /oldroot/<host path> even when it lies under a directory that the jail
// covers (a job temp dir under /tmp); then the new root replaces the staging
// one and the host root is detached.

#include "jail/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace sandbox::jail {

namespace {

constexpr const char* kOldRoot = "/oldroot";
constexpr const char* kNewRoot = "/newroot";

MountOp make_op(MountKind kind, fs::path target, fs::path source, std::string data,
                bool source_is_dir, bool allow_devices)
{
  MountOp op;
  op.kind = kind;
  op.target = std::move(target);
  op.source = std::move(source);
  op.data = std::move(data);
  op.source_is_dir = source_is_dir;
  op.allow_devices = allow_devices;
  return op;
}

bool is_under(const fs::path& root, const fs::path& path)
{
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    if (p == path.end() || *r != *p) {
      return false;
    }
  }
  return true;
}

class PlanBuilder {
public:
  std::vector<MountOp> ops;

  [[nodiscard]] bool covered(const fs::path& path) const
  {
    return std::ranges::any_of(m_bound, [&](const fs::path& b) { return is_under(b, path); });
  }

  [[nodiscard]] bool is_symlink_prefix(const fs::path& path) const
  {
    return std::ranges::any_of(m_links, [&](const fs::path& l) { return is_under(l, path); });
  }

  // Makes `path` visible as it is on the host: symlinks on the way are
  // recreated (their targets followed), the final object is bound read-only.
  void add_host_path(const fs::path& path, int depth = 0)
  {
    if (depth > 40 || !path.is_absolute()) {
      return;
    }
    fs::path normal = path.lexically_normal();
    std::vector<fs::path> parts(std::next(normal.begin()), normal.end());
    fs::path current = "/";
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (parts[i].empty()) {
        continue;
      }
      fs::path next = current / parts[i];
      if (covered(next)) {
        return;
      }
      struct stat st {};
      if (::lstat(next.c_str(), &st) != 0) {
        return; // optional toolchain part missing on this host
      }
      if (S_ISLNK(st.st_mode)) {
        std::error_code ec;
        fs::path link = fs::read_symlink(next, ec);
        if (ec) {
          return;
        }
        if (m_created.insert(next).second) {
          ops.push_back(make_op(MountKind::symlink, next, link, {}, false, false));
          m_links.push_back(next);
        }
        fs::path resolved = link.is_absolute() ? link : current / link;
        for (std::size_t j = i + 1; j < parts.size(); ++j) {
          resolved /= parts[j];
        }
        add_host_path(resolved, depth + 1);
        return;
      }
      bool last = i + 1 == parts.size();
      if (last) {
        if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
          ops.push_back(make_op(MountKind::bind_ro, next, next, {}, S_ISDIR(st.st_mode), false));
          m_created.insert(next);
          m_bound.push_back(next);
        }
        return;
      }
      if (!S_ISDIR(st.st_mode)) {
        return;
      }
      add_dir(next);
      current = next;
    }
  }

  void add_dir(const fs::path& dir)
  {
    if (m_created.insert(dir).second) {
      ops.push_back(make_op(MountKind::dir, dir, {}, {}, false, false));
    }
  }

  void add_parents(const fs::path& path)
  {
    fs::path current = "/";
    for (auto it = std::next(path.begin()); it != path.end(); ++it) {
      if (std::next(it) == path.end()) {
        break;
      }
      current /= *it;
      add_dir(current);
    }
  }

  void add(MountOp op)
  {
    add_parents(op.target);
    m_created.insert(op.target);
    if (op.kind == MountKind::bind_ro || op.kind == MountKind::bind_rw) {
      m_bound.push_back(op.target);
    }
    ops.push_back(std::move(op));
  }

private:
  std::set<fs::path> m_created;
  std::vector<fs::path> m_bound;
  std::vector<fs::path> m_links;
};

std::expected<void, std::string> check_inside_path(const fs::path& inside)
{
  if (!inside.is_absolute()) {
    return std::unexpected("inside path " + inside.string() + " is not absolute");
  }
  for (const auto& part : inside) {
    if (part == "..") {
      return std::unexpected("inside path " + inside.string() + " contains ..");
    }
  }
  if (inside == "/") {
    return std::unexpected("a bind cannot cover /");
  }
  for (const char* reserved : {"/proc", "/dev", "/etc"}) {
    if (is_under(reserved, inside)) {
      return std::unexpected("inside path " + inside.string() + " lies under " + reserved);
    }
  }
  return {};
}

} // namespace

std::string_view to_string(MountKind kind)
{
  switch (kind) {
  case MountKind::dir: return "dir";
  case MountKind::symlink: return "symlink";
  case MountKind::bind_ro: return "bind_ro";
  case MountKind::bind_rw: return "bind_rw";
  case MountKind::dev_bind: return "dev_bind";
  case MountKind::tmpfs: return "tmpfs";
  case MountKind::proc: return "proc";
  case MountKind::file: return "file";
  case MountKind::read_only: return "read_only";
  }
  return "?";
}

std::vector<fs::path> MountOptions::system_base()
{
  std::vector<fs::path> paths = {
      // Shared libraries: libc, libm, libtinfo, libz, libstdc++, libsctp, and
      // libcrypto for the crypto NIF; gconv for iconv.
      "/usr/lib/x86_64-linux-gnu",
      "/usr/lib/aarch64-linux-gnu",
      "/lib64/ld-linux-x86-64.so.2",
      "/lib/ld-linux-aarch64.so.1",
      "/etc/ld.so.cache",
      "/usr/lib/locale/C.utf8",
      "/etc/localtime",
      "/bin/sh",
  };
  // What the erl, elixir, elixirc and mix scripts run (traced with strace):
  // dirname, basename, readlink; cut and sed for some options; env for mix's
  // shebang; the rest are what a build script commonly expects.
  for (const char* tool :
       {"dash", "bash", "env", "dirname", "basename", "readlink", "sed", "cut", "mkdir", "cat",
        "uname", "tr", "head", "rm", "ls", "cp", "mv", "echo", "true", "false", "test"}) {
    paths.push_back(fs::path("/usr/bin") / tool);
  }
  return paths;
}

std::vector<fs::path> MountOptions::system_erlang()
{
  return {"/usr/lib/erlang", "/usr/bin/erl", "/usr/bin/erlc", "/usr/bin/escript"};
}

std::vector<fs::path> MountOptions::default_toolchain()
{
  auto paths = system_base();
  for (auto& path : system_erlang()) {
    paths.push_back(std::move(path));
  }
  for (const char* path :
       {"/usr/lib/elixir", "/usr/bin/elixir", "/usr/bin/elixirc", "/usr/bin/mix", "/usr/bin/iex"}) {
    paths.emplace_back(path);
  }
  return paths;
}

std::string passwd_content(const MountOptions& options)
{
  return "root:x:0:0:root:/:/bin/false\n" + options.user_name +
         ":x:" + std::to_string(options.inside_uid) + ":" + std::to_string(options.inside_gid) +
         "::" + options.home + ":/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
}

std::string group_content(const MountOptions& options)
{
  return "root:x:0:\n" + options.user_name + ":x:" + std::to_string(options.inside_gid) +
         ":\nnogroup:x:65534:\n";
}

std::expected<MountPlan, std::string> build_mount_plan(const ProcessSpec& spec,
                                                       const MountOptions& options)
{
  PlanBuilder builder;
  // /tmp first: a toolchain installed under the host's /tmp is then bound
  // inside the job's /tmp rather than hidden by it.
  builder.add(make_op(MountKind::tmpfs, "/tmp", {},
                      "size=" + std::to_string(options.tmp_bytes) +
                          ",nr_inodes=" + std::to_string(options.tmp_inodes) + ",mode=1777",
                      false, false));
  for (const auto& path : spec.toolchain_paths ? *spec.toolchain_paths : options.toolchain) {
    builder.add_host_path(path);
  }
  builder.add(make_op(MountKind::file, "/etc/passwd", {}, passwd_content(options), false, false));
  builder.add(make_op(MountKind::file, "/etc/group", {}, group_content(options), false, false));
  builder.add(make_op(MountKind::file, "/etc/hosts", {},
                      "127.0.0.1 localhost " + options.hostname + "\n::1 localhost\n", false,
                      false));
  builder.add(make_op(MountKind::file, "/etc/nsswitch.conf", {},
                      "passwd: files\ngroup: files\nhosts: files\n", false, false));
  builder.add(
      make_op(MountKind::tmpfs, "/dev", {}, "size=65536,nr_inodes=64,mode=0755", false, true));
  for (const char* node : {"null", "zero", "random", "urandom"}) {
    fs::path dev = fs::path("/dev") / node;
    builder.add(make_op(MountKind::dev_bind, dev, dev, {}, false, false));
  }
  builder.add(make_op(MountKind::symlink, "/dev/fd", "/proc/self/fd", {}, false, false));
  builder.add(make_op(MountKind::symlink, "/dev/stdin", "/proc/self/fd/0", {}, false, false));
  builder.add(make_op(MountKind::symlink, "/dev/stdout", "/proc/self/fd/1", {}, false, false));
  builder.add(make_op(MountKind::symlink, "/dev/stderr", "/proc/self/fd/2", {}, false, false));
  builder.add(make_op(MountKind::read_only, "/dev", {}, {}, false, false));
  // hidepid=2: a process sees only its own uid's /proc entries; all of the
  // jail runs as one uid, so it mainly hides nothing yet costs nothing.
  builder.add(make_op(MountKind::proc, "/proc", {}, "hidepid=2", false, false));

  for (const auto& bind : spec.binds) {
    if (auto ok = check_inside_path(bind.inside); !ok) {
      return std::unexpected(ok.error());
    }
    fs::path inside = bind.inside.lexically_normal();
    if (builder.covered(inside) || builder.is_symlink_prefix(inside)) {
      return std::unexpected("inside path " + inside.string() +
                             " lies in a read-only toolchain path");
    }
    std::error_code ec;
    fs::path host = fs::canonical(bind.host, ec);
    if (ec) {
      return std::unexpected("bind source " + bind.host.string() + ": " + ec.message());
    }
    bool is_dir = fs::is_directory(host, ec);
    builder.add(make_op(bind.writable ? MountKind::bind_rw : MountKind::bind_ro, inside, host, {},
                        is_dir, false));
  }
  return MountPlan{std::move(builder.ops)};
}

PreparedMounts::PreparedMounts(const MountPlan& plan)
{
  // Strings first (the vector must not reallocate once c_str() pointers are taken).
  m_strings.reserve(plan.ops.size() * 5);
  int next_fd = kBindSourceFdBase;
  std::vector<int> fds;
  for (const auto& op : plan.ops) {
    bool host_source = op.kind == MountKind::bind_ro || op.kind == MountKind::bind_rw ||
                       op.kind == MountKind::dev_bind;
    bool via_fd = op.kind == MountKind::bind_ro || op.kind == MountKind::bind_rw;
    int fd = via_fd ? next_fd++ : -1;
    fds.push_back(fd);
    m_strings.push_back(host_source ? kOldRoot + op.source.string() : op.source.string());
    m_strings.push_back(kNewRoot + op.target.string());
    m_strings.push_back(op.data);
    m_strings.push_back(op.source.string());
    m_strings.push_back(fd >= 0 ? std::string(kOldRoot) + "/proc/self/fd/" + std::to_string(fd)
                                : std::string());
  }
  m_ops.reserve(plan.ops.size());
  for (std::size_t i = 0; i < plan.ops.size(); ++i) {
    const auto& op = plan.ops[i];
    RawMountOp raw{op.kind, m_strings[5 * i].c_str(), m_strings[5 * i + 1].c_str(),
                   m_strings[5 * i + 2].c_str(), m_strings[5 * i + 2].size(), op.source_is_dir,
                   op.allow_devices};
    if (fds[i] >= 0) {
      raw.host_path = m_strings[5 * i + 3].c_str();
      raw.fd_source = m_strings[5 * i + 4].c_str();
      raw.source_fd = fds[i];
    }
    m_ops.push_back(raw);
  }
}

const char* mount_stage_name(MountStage stage)
{
  switch (stage) {
  case MountStage::make_private: return "mount_make_private";
  case MountStage::stage_tmpfs: return "mount_stage_tmpfs";
  case MountStage::stage_pivot: return "pivot_root_stage";
  case MountStage::root_tmpfs: return "mount_root_tmpfs";
  case MountStage::mkdir: return "mkdir_mount_point";
  case MountStage::symlink: return "symlink";
  case MountStage::bind: return "bind_mount";
  case MountStage::remount_bind: return "remount_bind";
  case MountStage::tmpfs: return "mount_tmpfs";
  case MountStage::proc: return "mount_proc";
  case MountStage::write_file: return "write_file";
  case MountStage::detach_oldroot: return "umount_oldroot";
  case MountStage::final_pivot: return "pivot_root";
  case MountStage::remount_root: return "remount_root_readonly";
  }
  return "mount";
}

namespace {

// Flags a user namespace may not clear on a bind of a more privileged mount
// ("locked" flags): a remount must repeat them or it fails with EPERM.
unsigned long locked_flags(const char* path)
{
  struct statvfs vfs {};
  if (::statvfs(path, &vfs) != 0) {
    return 0;
  }
  unsigned long flags = 0;
  if (vfs.f_flag & ST_RDONLY)
    flags |= MS_RDONLY;
  if (vfs.f_flag & ST_NOSUID)
    flags |= MS_NOSUID;
  if (vfs.f_flag & ST_NODEV)
    flags |= MS_NODEV;
  if (vfs.f_flag & ST_NOEXEC)
    flags |= MS_NOEXEC;
  if (vfs.f_flag & ST_NOATIME)
    flags |= MS_NOATIME;
  if (vfs.f_flag & ST_NODIRATIME)
    flags |= MS_NODIRATIME;
  if (vfs.f_flag & ST_RELATIME)
    flags |= MS_RELATIME;
  return flags;
}

bool make_mount_point(const RawMountOp& op)
{
  if (op.source_is_dir) {
    return ::mkdir(op.target, 0755) == 0 || errno == EEXIST;
  }
  int fd = ::open(op.target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    return errno == EEXIST;
  }
  ::close(fd);
  return true;
}

bool bind(const RawMountOp& op, unsigned long extra, MountStage* stage)
{
  *stage = MountStage::mkdir;
  if (!make_mount_point(op)) {
    return false;
  }
  *stage = MountStage::bind;
  const char* source = op.source_fd >= 0 ? op.fd_source : op.source;
  // Non-recursive so submounts of the source stay hidden; the kernel refuses
  // that (EINVAL) when the source has locked submounts, then bind them too.
  if (::mount(source, op.target, nullptr, MS_BIND, nullptr) != 0) {
    if (errno != EINVAL || ::mount(source, op.target, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return false;
    }
  }
  *stage = MountStage::remount_bind;
  unsigned long flags = MS_REMOUNT | MS_BIND | extra | locked_flags(op.target);
  return ::mount(nullptr, op.target, nullptr, flags, nullptr) == 0;
}

bool apply_op(const RawMountOp& op, MountStage* stage)
{
  switch (op.kind) {
  case MountKind::dir:
    *stage = MountStage::mkdir;
    return ::mkdir(op.target, 0755) == 0 || errno == EEXIST;
  case MountKind::symlink:
    *stage = MountStage::symlink;
    return ::symlink(op.source, op.target) == 0 || errno == EEXIST;
  case MountKind::bind_ro: return bind(op, MS_RDONLY | MS_NOSUID | MS_NODEV, stage);
  case MountKind::bind_rw: return bind(op, MS_NOSUID | MS_NODEV, stage);
  case MountKind::dev_bind: return bind(op, MS_NOSUID | MS_NOEXEC, stage);
  case MountKind::tmpfs: {
    *stage = MountStage::mkdir;
    if (::mkdir(op.target, 0755) != 0 && errno != EEXIST) {
      return false;
    }
    *stage = MountStage::tmpfs;
    unsigned long flags = MS_NOSUID | (op.allow_devices ? MS_NOEXEC : MS_NODEV);
    return ::mount("tmpfs", op.target, "tmpfs", flags, op.data) == 0;
  }
  case MountKind::proc:
    *stage = MountStage::mkdir;
    if (::mkdir(op.target, 0555) != 0 && errno != EEXIST) {
      return false;
    }
    *stage = MountStage::proc;
    return ::mount("proc", op.target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                   op.data) == 0;
  case MountKind::file: {
    *stage = MountStage::write_file;
    int fd = ::open(op.target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      return false;
    }
    std::size_t done = 0;
    while (done < op.data_len) {
      ssize_t n = ::write(fd, op.data + done, op.data_len - done);
      if (n <= 0) {
        ::close(fd);
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    return ::close(fd) == 0;
  }
  case MountKind::read_only:
    *stage = MountStage::remount_bind;
    return ::mount(nullptr, op.target, nullptr,
                   MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(op.target), nullptr) == 0;
  }
  return true;
}

} // namespace

bool open_bind_sources(const std::vector<RawMountOp>& ops)
{
  for (const auto& op : ops) {
    if (op.source_fd < 0) {
      continue;
    }
    int fd = ::open(op.host_path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
      return false;
    }
    if (fd != op.source_fd) {
      if (::dup3(fd, op.source_fd, O_CLOEXEC) < 0) {
        ::close(fd);
        return false;
      }
      ::close(fd);
    }
  }
  return true;
}

void close_bind_sources(const std::vector<RawMountOp>& ops)
{
  for (const auto& op : ops) {
    if (op.source_fd >= 0) {
      ::close(op.source_fd);
    }
  }
}

bool apply_mounts(const PreparedMounts& mounts, std::uint64_t root_bytes, MountStage* stage)
{
  *stage = MountStage::make_private;
  // Nothing we mount may propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return false;
  }
  *stage = MountStage::stage_tmpfs;
  if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=0700") != 0) {
    return false;
  }
  *stage = MountStage::stage_pivot;
  if (::chdir("/tmp") != 0 || ::mkdir("oldroot", 0700) != 0 || ::mkdir("newroot", 0755) != 0 ||
      ::syscall(SYS_pivot_root, ".", "oldroot") != 0 || ::chdir("/") != 0) {
    return false;
  }
  // The root tmpfs only holds mount points and the generated /etc files.
  char options[64] = "mode=0755,nr_inodes=4096,size=";
  {
    char digits[24];
    int n = 0;
    std::uint64_t value = root_bytes;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0 && n < 23);
    std::size_t len = std::strlen(options);
    while (n > 0 && len + 1 < sizeof options) {
      options[len++] = digits[--n];
    }
    options[len] = '\0';
  }
  *stage = MountStage::root_tmpfs;
  if (::mount("tmpfs", kNewRoot, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) {
    return false;
  }
  for (const auto& op : mounts.ops()) {
    if (!apply_op(op, stage)) {
      return false;
    }
  }
  *stage = MountStage::detach_oldroot;
  if (::umount2(kOldRoot, MNT_DETACH) != 0) {
    return false;
  }
  // pivot_root(".", ".") stacks the staging root on top of the new one;
  // detaching "." then leaves the new root alone.
  *stage = MountStage::final_pivot;
  if (::chdir(kNewRoot) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 ||
      ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0) {
    return false;
  }
  *stage = MountStage::remount_root;
  return ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                 nullptr) == 0;
}

} // namespace sandbox::jail
