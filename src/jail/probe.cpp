// Isolation probes. Each namespace is tried with unshare() in a forked child
// (so the engine's own namespaces never change); the child reports errno on a
// pipe. Cgroups are tried by creating and removing a directory.

#include "jail/probe.h"

#include "jail/cgroup.h"
#include "jail/seccomp_policy.h"
#include "util/fd.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <mutex>

namespace sandbox::jail {

namespace {

std::string meaning(int error)
{
  switch (error) {
  case EPERM:
    return "not permitted: user namespaces may be disabled (kernel.unprivileged_userns_clone, "
           "user.max_user_namespaces=0), or a container's seccomp profile or missing "
           "CAP_SYS_ADMIN forbids it";
  case EINVAL: return "the kernel does not support this (built without the feature?)";
  case ENOSPC: return "the namespace limit (/proc/sys/user/max_*_namespaces) is reached";
  case ENOSYS: return "the kernel lacks this system call";
  case EACCES: return "permission denied on the cgroup directory (not delegated to us)";
  case EROFS: return "the cgroup file system is mounted read-only (a container?)";
  case EBUSY: return "busy";
  default: return "";
  }
}

std::string failure_detail(const std::string& what, int error)
{
  std::string text = what + " failed: " + std::strerror(error);
  if (auto why = meaning(error); !why.empty()) {
    text += " (" + why + ")";
  }
  return text;
}

// Runs `body` in a forked child; returns the errno it reports (0: worked).
int in_child(const std::function<int()>& body)
{
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return errno;
  }
  util::Fd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    return errno;
  }
  if (pid == 0) {
    read_end.reset();
    int error = body();
    ssize_t ignored = ::write(write_end.get(), &error, sizeof error);
    (void)ignored;
    ::_exit(0);
  }
  write_end.reset();
  int error = ECHILD;
  ssize_t got = ::read(read_end.get(), &error, sizeof error);
  ::waitpid(pid, nullptr, 0);
  return got == static_cast<ssize_t>(sizeof error) ? error : ECHILD;
}

LayerProbe probe_unshare(const char* name, int flags)
{
  int error = in_child([flags] {
    // A namespace other than the user one needs CAP_SYS_ADMIN: unprivileged,
    // that comes from a new user namespace, as in the jail.
    int extra = (flags != CLONE_NEWUSER && ::geteuid() != 0) ? CLONE_NEWUSER : 0;
    return ::unshare(flags | extra) == 0 ? 0 : errno;
  });
  std::string call = std::string("unshare(") + name + ")";
  return {name, error == 0, error == 0 ? call + " works" : failure_detail(call, error)};
}

LayerProbe probe_seccomp()
{
  auto program = compile_seccomp(seccomp_rules());
  if (!program) {
    return {"seccomp", false, "compiling the filter failed: " + program.error()};
  }
  const SeccompProgram& filter = *program;
  int error = in_child([&filter] {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || !load_seccomp(filter)) {
      return errno;
    }
    // The filter must refuse an AF_INET socket with EPERM.
    int fd = static_cast<int>(::syscall(SYS_socket, 2 /* AF_INET */, 1 /* SOCK_STREAM */, 0));
    return fd < 0 && errno == EPERM ? 0 : EINVAL;
  });
  return {"seccomp", error == 0,
          error == 0 ? "filter of " + std::to_string(filter.size()) +
                           " instructions loads and refuses AF_INET sockets"
                     : failure_detail("loading the seccomp filter", error)};
}

// Writes /proc/self/NAME; false with errno set when it cannot.
bool write_self_file(const char* name, const std::string& text)
{
  std::string path = std::string("/proc/self/") + name;
  util::Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

LayerProbe probe_pivot_root()
{
  int error = in_child([] {
    // As the jail does: a user namespace with its uid and gid maps written
    // (without them the fsuid is unmapped and mkdir fails with EOVERFLOW),
    // then a private mount namespace.
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0) {
      if (!write_self_file("setgroups", "deny") ||
          !write_self_file("uid_map", "0 " + std::to_string(uid) + " 1") ||
          !write_self_file("gid_map", "0 " + std::to_string(gid) + " 1")) {
        return errno;
      }
    } else if (::unshare(CLONE_NEWNS) != 0) {
      return errno;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/tmp", "tmpfs", 0, "size=65536") != 0 || ::chdir("/tmp") != 0 ||
        ::mkdir("old", 0700) != 0 || ::syscall(SYS_pivot_root, ".", "old") != 0) {
      return errno;
    }
    return 0;
  });
  return {"pivot_root", error == 0,
          error == 0 ? "pivot_root onto a tmpfs works"
                     : failure_detail("pivot_root onto a tmpfs", error)};
}

std::vector<LayerProbe> probe_cgroups()
{
  std::vector<LayerProbe> probes;
  auto layout = detect_cgroup_layout();
  if (!layout) {
    probes.push_back({"cgroup", false, "cannot read the cgroup layout: " + layout.error()});
    return probes;
  }
  probes.push_back({"cgroup.layout", true, layout->describe()});
  std::string name = "sandbox-probe-" + std::to_string(::getpid());
  auto try_dir = [&](const std::string& label, const fs::path& parent, const char* file) {
    fs::path dir = parent / name;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      probes.push_back({label, false, failure_detail("mkdir " + dir.string(), errno)});
      return;
    }
    bool has_file = file == nullptr || ::access((dir / file).c_str(), W_OK) == 0;
    int error = errno;
    ::rmdir(dir.c_str());
    probes.push_back({label, has_file,
                      has_file ? "created and removed " + dir.string()
                               : failure_detail(std::string(file) + " in " + dir.string(), error)});
  };
  for (const auto& [controller, file] : {std::pair{"memory", "memory.limit_in_bytes"},
                                         {"pids", "pids.max"},
                                         {"cpu", "cpu.cfs_quota_us"},
                                         {"cpuacct", "cpuacct.usage"},
                                         {"freezer", "freezer.state"}}) {
    if (auto it = layout->v1.find(controller); it != layout->v1.end()) {
      try_dir(std::string("cgroup.") + controller, it->second, file);
    } else if (layout->on_v2(controller)) {
      const char* v2_file = std::string_view(controller) == "memory" ? "memory.max"
                            : std::string_view(controller) == "cpu"  ? "cpu.max"
                                                                     : nullptr;
      try_dir(std::string("cgroup.") + controller, *layout->unified, v2_file);
    } else {
      probes.push_back({std::string("cgroup.") + controller, false,
                        "no hierarchy offers this controller to us"});
    }
  }
  if (layout->unified) {
    try_dir("cgroup.unified", *layout->unified, "cgroup.kill");
  }
  return probes;
}

} // namespace

std::vector<LayerProbe> probe_isolation()
{
  std::vector<LayerProbe> probes;
  probes.push_back(probe_unshare("user_ns", CLONE_NEWUSER));
  probes.push_back(probe_unshare("pid_ns", CLONE_NEWPID));
  probes.push_back(probe_unshare("mount_ns", CLONE_NEWNS));
  probes.push_back(probe_unshare("net_ns", CLONE_NEWNET));
  probes.push_back(probe_unshare("ipc_ns", CLONE_NEWIPC));
  probes.push_back(probe_unshare("uts_ns", CLONE_NEWUTS));
  probes.push_back(probe_unshare("cgroup_ns", CLONE_NEWCGROUP));
  probes.push_back(probe_seccomp());
  probes.push_back(probe_pivot_root());
  for (auto& probe : probe_cgroups()) {
    probes.push_back(std::move(probe));
  }
  return probes;
}

bool jail_supported()
{
  static std::once_flag once;
  static bool supported = false;
  std::call_once(once, [] {
    int working = 0;
    for (const auto& probe : probe_isolation()) {
      if ((probe.name == "user_ns" || probe.name == "mount_ns" || probe.name == "pid_ns" ||
           probe.name == "seccomp") &&
          probe.works) {
        ++working;
      }
    }
    supported = working == 4;
  });
  return supported;
}

} // namespace sandbox::jail
