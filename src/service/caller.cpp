#include "service/caller.h"

#include "compiler/engine_state.h"
#include "util/fd.h"
#include "util/fs.h"
#include "util/hash.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <set>

namespace sandbox::service {

namespace {

using util::Fd;

// Raw system calls: these change the calling thread only (glibc's setgroups
// would change every thread of the engine).
long set_fsuid(uid_t uid) { return ::syscall(SYS_setfsuid, uid); }
long set_fsgid(gid_t gid) { return ::syscall(SYS_setfsgid, gid); }
long set_groups(const std::vector<gid_t>& groups)
{
  return ::syscall(SYS_setgroups, groups.size(), groups.data());
}

bool denied(int error) { return error == EACCES || error == EPERM || error == ELOOP; }

// Runs `body` with the caller's file-system credentials; the errno it left
// survives the switch back.
template <class Body> auto as_caller(const Caller& caller, Body&& body)
{
  decltype(body()) result = -1;
  int saved = EPERM;
  {
    ActingAs acting(caller);
    if (acting.active()) {
      result = body();
      saved = errno;
    }
  }
  errno = saved;
  return result;
}

core::Error open_error(const std::string& path, int error, const char* operation)
{
  if (denied(error)) {
    return core::PermissionDenied{path, operation};
  }
  if (error == ENOENT) {
    return core::InvalidSandboxPath{path, "does not exist"};
  }
  if (error == ENOTDIR) {
    return core::InvalidSandboxPath{path, "is not a directory"};
  }
  return core::InvalidSandboxPath{path, std::strerror(error)};
}

// Copies what `in` holds into a new file at `target` (mode 0644, mtime of `st`),
// written first at `incoming` (on the same file system, outside the copied tree,
// so no name of the caller's can collide with it) and renamed into place.
std::expected<void, std::string> copy_fd_to(int in, const struct stat& st, const fs::path& target,
                                            const fs::path& incoming)
{
  Fd out(::open(incoming.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) {
    return std::unexpected(util::errno_message("create " + incoming.string()));
  }
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(in, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return std::unexpected(util::errno_message("read"));
    }
    if (n == 0) {
      break;
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), buffer + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w <= 0) {
        return std::unexpected(util::errno_message("write " + incoming.string()));
      }
      done += w;
    }
  }
  ::fchmod(out.get(), 0644);
  timespec times[2] = {st.st_atim, st.st_mtim};
  ::futimens(out.get(), times);
  out.reset();
  if (::rename(incoming.c_str(), target.c_str()) != 0) {
    return std::unexpected(util::errno_message("rename to " + target.string()));
  }
  return {};
}

// Brings `target` (engine-owned) up to date with the directory `dir`, which
// was opened as the caller; every entry is looked at and opened as the caller.
class TreeSync {
public:
  TreeSync(const Caller& caller, std::string display_root, const StageLimits& limits, fs::path incoming)
    : m_caller(caller), m_display_root(std::move(display_root)), m_limits(limits), m_incoming(std::move(incoming))
  {
  }

  std::expected<void, core::Error> sync(int dir, const fs::path& target, const std::string& relative)
  {
    Fd listing(::dup(dir));
    DIR* stream = listing ? ::fdopendir(listing.get()) : nullptr;
    if (stream == nullptr) {
      return std::unexpected(core::InvalidSandboxPath{shown(relative), std::strerror(errno)});
    }
    listing.release();
    std::unique_ptr<DIR, int (*)(DIR*)> owner(stream, ::closedir);
    std::set<std::string> seen;
    while (const dirent* entry = ::readdir(stream)) {
      std::string name = entry->d_name;
      if (name == "." || name == ".." || (relative.empty() && name == ".sandbox_cache")) {
        continue;
      }
      if (++m_entries > m_limits.max_entries) {
        return std::unexpected(core::InvalidSandboxPath{
          m_display_root, fmt::format("more than {} entries", m_limits.max_entries)});
      }
      seen.insert(name);
      if (auto done = sync_entry(dir, name, target / name, join(relative, name)); !done) {
        return done;
      }
    }
    // What the caller's tree no longer has goes from the copy too.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(target, ec)) {
      auto name = entry.path().filename().string();
      if (!seen.contains(name) && !(relative.empty() && name == ".sandbox_cache")) {
        fs::remove_all(entry.path(), ec);
      }
    }
    return {};
  }

private:
  static std::string join(const std::string& relative, const std::string& name)
  {
    return relative.empty() ? name : relative + "/" + name;
  }
  [[nodiscard]] std::string shown(const std::string& relative) const
  {
    return relative.empty() ? m_display_root : m_display_root + "/" + relative;
  }

  std::expected<void, core::Error> sync_entry(int dir, const std::string& name, const fs::path& target,
                                              const std::string& relative)
  {
    struct stat st {};
    if (as_caller(m_caller, [&] { return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
      return std::unexpected(open_error(shown(relative), errno, "read"));
    }
    struct stat current {};
    bool exists = ::lstat(target.c_str(), &current) == 0;
    std::error_code ec;
    if (S_ISDIR(st.st_mode)) {
      Fd child(as_caller(m_caller, [&] {
        return ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }));
      if (!child) {
        return std::unexpected(open_error(shown(relative), errno, "read"));
      }
      if (exists && !S_ISDIR(current.st_mode)) {
        fs::remove_all(target, ec);
        exists = false;
      }
      if (!exists && ::mkdir(target.c_str(), 0755) != 0) {
        return std::unexpected(core::JailSetupFailed{"stage", util::errno_message("mkdir " + target.string())});
      }
      return sync(child.get(), target, relative);
    }
    if (S_ISLNK(st.st_mode)) {
      // Copied as a link, never followed: inside the jail it points into the jail.
      std::string link(4096, '\0');
      ssize_t n = as_caller(m_caller, [&] { return ::readlinkat(dir, name.c_str(), link.data(), link.size()); });
      if (n < 0) {
        return std::unexpected(open_error(shown(relative), errno, "read"));
      }
      link.resize(static_cast<std::size_t>(n));
      if (exists && S_ISLNK(current.st_mode) && fs::read_symlink(target, ec) == link) {
        return {};
      }
      fs::remove_all(target, ec);
      if (::symlink(link.c_str(), target.c_str()) != 0) {
        return std::unexpected(core::JailSetupFailed{"stage", util::errno_message("symlink " + target.string())});
      }
      return {};
    }
    if (!S_ISREG(st.st_mode)) {
      return {}; // devices, fifos and sockets are not sources
    }
    // Opened as the caller every time: a file the caller can no longer read
    // is refused even when the copy is current.
    Fd in(as_caller(m_caller, [&] {
      return ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    }));
    if (!in) {
      return std::unexpected(open_error(shown(relative), errno, "read"));
    }
    struct stat opened {};
    if (::fstat(in.get(), &opened) != 0 || !S_ISREG(opened.st_mode)) {
      return std::unexpected(core::InvalidSandboxPath{shown(relative), "changed while it was read"});
    }
    m_bytes += static_cast<std::uint64_t>(opened.st_size);
    if (m_bytes > m_limits.max_total_bytes) {
      return std::unexpected(core::InvalidSandboxPath{
        m_display_root, fmt::format("larger than {} bytes", m_limits.max_total_bytes)});
    }
    if (exists && S_ISREG(current.st_mode) && current.st_size == opened.st_size &&
        current.st_mtim.tv_sec == opened.st_mtim.tv_sec && current.st_mtim.tv_nsec == opened.st_mtim.tv_nsec) {
      return {};
    }
    if (exists && !S_ISREG(current.st_mode)) {
      fs::remove_all(target, ec);
    }
    if (auto copied = copy_fd_to(in.get(), opened, target, m_incoming); !copied) {
      return std::unexpected(core::JailSetupFailed{"stage", copied.error()});
    }
    return {};
  }

  const Caller& m_caller;
  std::string m_display_root;
  StageLimits m_limits;
  fs::path m_incoming;
  std::size_t m_entries = 0;
  std::uint64_t m_bytes = 0;
};

std::string fd_path(int fd)
{
  std::error_code ec;
  auto target = fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  return ec ? std::string() : target.string();
}

} // namespace

std::string Caller::describe() const { return fmt::format("uid {} gid {} pid {}", uid, gid, pid); }

Caller Caller::of_process()
{
  Caller caller{::geteuid(), ::getegid(), ::getpid(), {}};
  int count = ::getgroups(0, nullptr);
  if (count > 0) {
    caller.groups.resize(static_cast<std::size_t>(count));
    count = ::getgroups(count, caller.groups.data());
    caller.groups.resize(static_cast<std::size_t>(std::max(count, 0)));
  }
  return caller;
}

std::expected<Caller, std::string> Caller::of_socket(int fd)
{
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    return std::unexpected(util::errno_message("SO_PEERCRED"));
  }
  Caller caller{credentials.uid, credentials.gid, credentials.pid, {}};
  // The peer's supplementary groups as they were at connect time.
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      caller.groups = std::move(groups);
      return caller;
    }
    if (errno != ERANGE) {
      return std::unexpected(util::errno_message("SO_PEERGROUPS"));
    }
    groups.resize(bytes / sizeof(gid_t) + 1);
  }
  return std::unexpected("SO_PEERGROUPS: the group list keeps growing");
}

ActingAs::ActingAs(const Caller& caller)
  : m_fsuid(static_cast<uid_t>(set_fsuid(static_cast<uid_t>(-1)))),
    m_fsgid(static_cast<gid_t>(set_fsgid(static_cast<gid_t>(-1))))
{
  int count = ::getgroups(0, nullptr);
  m_groups.resize(static_cast<std::size_t>(std::max(count, 0)));
  if (count > 0) {
    ::getgroups(count, m_groups.data());
  }
  if (set_groups(caller.groups) != 0) {
    return;
  }
  set_fsgid(caller.gid);
  set_fsuid(caller.uid);
  // setfsuid reports no error: read the values back.
  m_active = static_cast<uid_t>(set_fsuid(static_cast<uid_t>(-1))) == caller.uid &&
             static_cast<gid_t>(set_fsgid(static_cast<gid_t>(-1))) == caller.gid;
}

ActingAs::~ActingAs()
{
  set_fsuid(m_fsuid);
  set_fsgid(m_fsgid);
  set_groups(m_groups);
}

namespace {

// Removes the least recently used mirrors of one caller beyond `keep`. A
// mirror a request holds (its lock taken) is skipped; the lock files stay.
void prune_mirrors(const fs::path& caller_dir, std::size_t keep)
{
  std::vector<std::pair<fs::file_time_type, fs::path>> locks;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(caller_dir, ec)) {
    if (entry.path().extension() == ".lock" && fs::is_directory(fs::path(entry.path()).replace_extension(), ec)) {
      locks.emplace_back(entry.last_write_time(ec), entry.path());
    }
  }
  if (locks.size() <= keep) {
    return;
  }
  std::sort(locks.begin(), locks.end());
  for (std::size_t i = 0; i + keep < locks.size(); ++i) {
    Fd lock(::open(locks[i].second.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      continue; // in use: a request holds it
    }
    (void)util::remove_tree(fs::path(locks[i].second).replace_extension());
  }
}

} // namespace

std::expected<Mirror, core::Error> Mirror::sync(const Caller& caller, const std::string& path,
                                                const StageLimits& limits)
{
  Fd root(as_caller(caller, [&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
  if (!root) {
    return std::unexpected(open_error(path, errno, "read"));
  }
  Mirror mirror;
  mirror.m_source = fd_path(root.get());
  auto base = compiler::state_dir() / "callers" / std::to_string(caller.uid) /
              util::sha256_hex(mirror.m_source.string()).substr(0, 32);
  std::error_code ec;
  fs::create_directories(base, ec);
  fs::permissions(compiler::state_dir() / "callers", fs::perms::owner_all, ec);
  Fd lock(::open((base.string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0) {
    return std::unexpected(core::JailSetupFailed{"stage", util::errno_message("lock " + base.string())});
  }
  mirror.m_lock = std::shared_ptr<int>(new int(lock.release()), [](int* fd) {
    ::close(*fd);
    delete fd;
  });
  mirror.m_tree = base / "tree";
  fs::create_directories(base, ec); // again: another request may have pruned it while this one waited
  if (::mkdir(mirror.m_tree.c_str(), 0755) != 0 && errno != EEXIST) {
    return std::unexpected(core::JailSetupFailed{"stage", util::errno_message("mkdir " + mirror.m_tree.string())});
  }
  ::chmod(mirror.m_tree.c_str(), 0755);
  ::futimens(*mirror.m_lock, nullptr); // the lock file's time is when the mirror was last used
  TreeSync syncer(caller, path, limits, base / "incoming");
  if (auto synced = syncer.sync(root.get(), mirror.m_tree, ""); !synced) {
    return std::unexpected(synced.error());
  }
  prune_mirrors(base.parent_path(), limits.max_mirrors);
  return mirror;
}

std::expected<fs::path, core::Error> stage_file(const Caller& caller, const std::string& file, const fs::path& dir)
{
  Fd in(as_caller(caller, [&] { return ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); }));
  if (!in) {
    return std::unexpected(open_error(file, errno, "read"));
  }
  struct stat st {};
  if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::unexpected(core::InvalidSandboxPath{file, "is not a regular file"});
  }
  if (static_cast<std::uint64_t>(st.st_size) > StageLimits{}.max_total_bytes) {
    return std::unexpected(core::InvalidSandboxPath{file, "too large"});
  }
  auto target = dir / fs::path(file).filename();
  if (auto copied = copy_fd_to(in.get(), st, target, dir.parent_path() / (dir.filename().string() + ".incoming"));
      !copied) {
    return std::unexpected(core::JailSetupFailed{"stage", copied.error()});
  }
  return target;
}

std::expected<std::vector<fs::path>, core::Error>
deliver_files(const Caller& caller, const std::vector<fs::path>& files, const std::string& target)
{
  Fd dir(as_caller(caller, [&] {
    std::error_code ec;
    fs::create_directories(target, ec); // as the caller: only where it may create
    if (ec) {
      errno = ec.value();
      return -1;
    }
    return ::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }));
  if (!dir) {
    return std::unexpected(open_error(target, errno, "write"));
  }
  std::vector<fs::path> delivered;
  for (const auto& file : files) {
    auto name = file.filename().string();
    auto shown = (fs::path(target) / name).string();
    Fd in(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!in) {
      return std::unexpected(core::JailSetupFailed{"deliver", util::errno_message("open " + file.string())});
    }
    Fd out(as_caller(caller, [&] {
      return ::openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    }));
    if (!out) {
      return std::unexpected(open_error(shown, errno, "write"));
    }
    char buffer[65536];
    ssize_t n;
    while ((n = ::read(in.get(), buffer, sizeof buffer)) > 0) {
      if (::write(out.get(), buffer, static_cast<std::size_t>(n)) != n) {
        return std::unexpected(core::JailSetupFailed{"deliver", util::errno_message("write " + shown)});
      }
    }
    delivered.push_back(shown);
  }
  return delivered;
}

std::expected<void, std::string> give_tree(const Caller& caller, const fs::path& dir)
{
  static thread_local const Caller* owner = nullptr;
  owner = &caller;
  auto chown_entry = [](const char* path, const struct stat*, int, FTW*) {
    return ::lchown(path, owner->uid, owner->gid) == 0 ? 0 : -1;
  };
  if (::nftw(dir.c_str(), chown_entry, 16, FTW_PHYS) != 0) {
    return std::unexpected(util::errno_message("chown " + dir.string()));
  }
  return {};
}

std::expected<void, core::Error> check_owns(const Caller& caller, const std::string& path)
{
  struct stat st {};
  if (as_caller(caller, [&] { return ::lstat(path.c_str(), &st); }) != 0) {
    return std::unexpected(open_error(path, errno, "cleanup"));
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != caller.uid) {
    return std::unexpected(core::PermissionDenied{path, "cleanup"});
  }
  return {};
}

} // namespace sandbox::service
