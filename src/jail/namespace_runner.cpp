// NamespaceRunner::run: prepares everything the child needs (mount list,
// seccomp program, argv/envp, cgroup), clones into the new namespaces, sets
// the uid/gid maps and cgroup membership from outside, releases the child and
// supervises it. Every handle has an owner, so every early return cleans up.

#include "jail/namespace_runner.h"

#include "jail/jail_child.h"
#include "jail/supervisor.h"
#include "util/fd.h"
#include "util/fs.h"
#include "util/time.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

namespace sandbox::jail {

namespace {

using util::Fd;

constexpr std::uint64_t kNamespaceFlags =
    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
constexpr std::uint64_t kMinAddressSpace = 2ull << 30;

ProcessResult setup_failure(std::string stage, std::string error)
{
  ProcessResult result;
  result.verdict = Verdict::setup_failure;
  result.setup_stage = std::move(stage);
  result.setup_error = std::move(error);
  return result;
}

// Owns the init's pid until it has been reaped: an early return kills the
// whole namespace (SIGKILL to its init) and reaps it.
class InitProcess {
public:
  InitProcess(pid_t pid, int pidfd) : m_pid(pid), m_pidfd(pidfd) {}
  InitProcess(const InitProcess&) = delete;
  InitProcess& operator=(const InitProcess&) = delete;
  ~InitProcess()
  {
    if (m_pid > 0 && !m_reaped) {
      ::kill(m_pid, SIGKILL);
      ::waitpid(m_pid, nullptr, __WALL);
    }
  }
  [[nodiscard]] pid_t pid() const { return m_pid; }
  [[nodiscard]] int pidfd() const { return m_pidfd.get(); }
  void mark_reaped() { m_reaped = true; }

private:
  pid_t m_pid;
  Fd m_pidfd;
  bool m_reaped = false;
};

bool write_proc_file(pid_t pid, const char* name, const std::string& text)
{
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

// Gives the job's host uid the writable binds, without following symlinks
// (a planted link must not make us chown a host file).
std::expected<void, std::string> chown_tree(const fs::path& bind_host, uid_t uid, gid_t gid)
{
  // The directory that will be bound (mount follows a symlinked source).
  std::error_code canonical_error;
  fs::path root = fs::canonical(bind_host, canonical_error);
  if (canonical_error) {
    return std::unexpected("chown " + bind_host.string() + ": " + canonical_error.message());
  }
  if (::lchown(root.c_str(), uid, gid) != 0) {
    return std::unexpected(util::errno_message("chown " + root.string()));
  }
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) {
      return std::unexpected(util::errno_message("chown " + it->path().string()));
    }
  }
  if (ec) {
    return std::unexpected("chown " + root.string() + ": " + ec.message());
  }
  return {};
}

int cap_last_cap()
{
  auto text = util::read_file("/proc/sys/kernel/cap_last_cap", 64);
  if (!text) {
    return 40;
  }
  try {
    return std::stoi(*text);
  } catch (...) {
    return 40;
  }
}

pid_t clone_jail(int cgroup_fd, int* pidfd, bool* into_cgroup)
{
  clone_args args{};
  args.flags = kNamespaceFlags | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
  args.pidfd = reinterpret_cast<std::uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = cgroup_fd >= 0 ? static_cast<std::uint64_t>(cgroup_fd) : 0;
  *into_cgroup = cgroup_fd >= 0;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0 || (errno != ENOSYS && errno != EINVAL && errno != E2BIG)) {
    return static_cast<pid_t>(pid);
  }
  // Older kernels: clone without a pidfd or cgroup; the caller opens the
  // pidfd and attaches the cgroups before releasing the child.
  *into_cgroup = false;
  *pidfd = -1;
  return static_cast<pid_t>(
      ::syscall(SYS_clone, kNamespaceFlags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

} // namespace

NamespaceRunner::NamespaceRunner(NamespaceRunnerOptions options) : m_options(std::move(options))
{
  m_ncpus = std::max(1u, std::thread::hardware_concurrency());
  m_cap_last = cap_last_cap();
  if (m_options.use_seccomp) {
    if (auto program = compile_seccomp(seccomp_rules())) {
      m_seccomp = std::move(*program);
    } else {
      m_notes.push_back("seccomp: " + program.error());
    }
  }
  if (m_options.use_cgroups) {
    if (auto layout = detect_cgroup_layout()) {
      m_layout = std::move(*layout);
      // Job cgroups named after an engine that no longer runs are leftovers
      // of a crash: kill what is in them and remove them.
      for (const auto& dir : remove_stale_cgroups(*m_layout)) {
        m_notes.push_back("removed stale cgroup " + dir.string());
      }
    } else {
      m_notes.push_back("cgroups: " + layout.error());
    }
  }
}

Isolation NamespaceRunner::isolation() const
{
  Isolation isolation;
  isolation.mode = "jail";
  for (const char* layer : {"user_ns", "pid_ns", "mount_ns", "net_ns", "ipc_ns", "uts_ns",
                            "cgroup_ns", "no_new_privs", "capabilities_dropped"}) {
    isolation.layers[layer] = true;
  }
  isolation.layers["seccomp"] = m_seccomp.has_value();
  bool memory = m_layout && m_layout->parent_for("memory");
  bool pids = m_layout && m_layout->parent_for("pids");
  bool cpu = m_layout && m_layout->parent_for("cpu");
  bool accounting = m_layout && (m_layout->unified || m_layout->parent_for("cpuacct"));
  isolation.layers["cgroup"] = memory || pids || cpu;
  isolation.enforced_limits = {"timeout", "output_cap"};
  if (memory) {
    isolation.enforced_limits.push_back("memory_limit");
  }
  if (pids) {
    isolation.enforced_limits.push_back("max_processes");
  }
  if (cpu) {
    isolation.enforced_limits.push_back("cpu_limit");
  }
  if (accounting) {
    isolation.enforced_limits.push_back("cpu_time");
  }
  return isolation;
}

// A jail whose init has been released: the handles the supervisor needs.
struct LaunchedJail {
  std::unique_ptr<InitProcess> init;
  std::unique_ptr<ChildRegistration> registration;
  std::optional<JobCgroup> cgroup;
  Fd out_read;
  Fd report_read;
  Fd sync_write; // open until the job ends: its hang-up tells the child the engine died
  MonitorSettings monitor;
  std::vector<std::string> warnings;

  [[nodiscard]] SupervisedJob job(int stop_fd) const
  {
    return {init->pid(), init->pidfd(), out_read.get(), report_read.get(),
            cgroup ? const_cast<JobCgroup*>(&*cgroup) : nullptr, stop_fd};
  }
};

std::expected<LaunchedJail, ProcessResult> NamespaceRunner::launch(const ProcessSpec& spec,
                                                                   std::span<const int> inherit)
{
  if (spec.argv.empty() || !fs::path(spec.argv[0]).is_absolute()) {
    return std::unexpected(setup_failure("spec", "argv[0] must be an absolute path inside the jail"));
  }
  if (inherit.size() > static_cast<std::size_t>(kMaxInheritFds)) {
    return std::unexpected(setup_failure("spec", "too many inherited descriptors"));
  }
  for (int fd : inherit) {
    if (fd < kInheritFdMin) {
      return std::unexpected(setup_failure("spec", "inherited descriptors must be >= 10"));
    }
  }
  auto plan = build_mount_plan(spec, m_options.mounts);
  if (!plan) {
    return std::unexpected(setup_failure("mount_plan", plan.error()));
  }
  PreparedMounts mounts(*plan);

  bool privileged = ::geteuid() == 0;
  uid_t host_uid = privileged ? m_options.host_uid : ::geteuid();
  gid_t host_gid = privileged ? m_options.host_gid : ::getegid();
  if (privileged && m_options.chown_writable_binds) {
    for (const auto& bind : spec.binds) {
      if (bind.writable) {
        if (auto ok = chown_tree(bind.host, host_uid, host_gid); !ok) {
          return std::unexpected(setup_failure("chown_bind", ok.error()));
        }
      }
    }
  }

  // Everything the child reads is built now: it must not allocate.
  auto argv = exec_array(spec.argv);
  auto envp = exec_array(spec.env);
  std::string cwd = spec.cwd.string();

  LaunchedJail jail;
  CgroupValues values = cgroup_values(spec.limits, m_options.cgroup, m_ncpus);
  if (m_layout) {
    // One counter for the process: a long-running engine holds several
    // runners at once (a warm worker's and a job's), whose cgroups must differ.
    static std::atomic<std::uint64_t> counter{0};
    auto name = job_cgroup_name(::getpid(), counter.fetch_add(1));
    if (auto group = JobCgroup::create(*m_layout, name, values)) {
      jail.cgroup.emplace(std::move(*group));
    } else if (m_options.require_cgroups) {
      return std::unexpected(setup_failure("cgroup", group.error()));
    } else {
      jail.warnings.push_back("running without a job cgroup: " + group.error());
    }
  } else if (m_options.require_cgroups) {
    return std::unexpected(setup_failure("cgroup", "no usable cgroup hierarchy"));
  }

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return std::unexpected(setup_failure("pipe", std::strerror(errno)));
  }
  Fd out_read(pipe_fds[0]), out_write(pipe_fds[1]);
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return std::unexpected(setup_failure("pipe", std::strerror(errno)));
  }
  Fd report_read(pipe_fds[0]), report_write(pipe_fds[1]);
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return std::unexpected(setup_failure("pipe", std::strerror(errno)));
  }
  Fd sync_read(pipe_fds[0]), sync_write(pipe_fds[1]);
  Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null) {
    return std::unexpected(setup_failure("open_dev_null", std::strerror(errno)));
  }

  ChildConfig config;
  config.mounts = &mounts;
  config.root_bytes = m_options.root_tmpfs_bytes;
  config.seccomp = m_seccomp ? &*m_seccomp : nullptr;
  config.argv = argv.data();
  config.envp = envp.data();
  config.cwd = cwd.c_str();
  config.hostname = m_options.mounts.hostname.c_str();
  config.uid = m_options.mounts.inside_uid;
  config.gid = m_options.mounts.inside_gid;
  config.drop_groups = privileged;
  config.cap_last = m_cap_last;
  config.open_files = m_options.open_files;
  config.file_bytes = m_options.max_file_bytes;
  config.address_space = std::max(m_options.address_space_bytes, kMinAddressSpace);
  config.sync_fd = sync_read.get();
  config.report_fd = report_write.get();
  config.output_fd = out_write.get();
  config.null_fd = dev_null.get();
  config.inherit_fds = inherit.data();
  config.inherit_count = static_cast<int>(inherit.size());

  int pidfd = -1;
  bool into_cgroup = false;
  pid_t pid = clone_jail(jail.cgroup ? jail.cgroup->unified_fd() : -1, &pidfd, &into_cgroup);
  if (pid == 0) {
    jail_init_main(config);
  }
  if (pid < 0) {
    return std::unexpected(setup_failure(
        "clone",
        std::string(std::strerror(errno)) +
            (errno == EPERM || errno == ENOSPC ? " (user namespaces disabled or exhausted?)" : "")));
  }
  if (pidfd < 0) {
    pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  }
  jail.init = std::make_unique<InitProcess>(pid, pidfd);
  jail.registration = std::make_unique<ChildRegistration>(pid);
  out_write.reset();
  report_write.reset();
  sync_read.reset();
  dev_null.reset();
  if (jail.init->pidfd() < 0) {
    return std::unexpected(setup_failure("pidfd_open", std::strerror(errno)));
  }

  // The child waits for these: identity maps, then cgroup membership.
  if (!privileged && !write_proc_file(pid, "setgroups", "deny")) {
    return std::unexpected(setup_failure("setgroups_deny", std::strerror(errno)));
  }
  if (!write_proc_file(pid, "uid_map",
                       std::to_string(config.uid) + " " + std::to_string(host_uid) + " 1\n")) {
    return std::unexpected(setup_failure("uid_map", std::strerror(errno)));
  }
  if (!write_proc_file(pid, "gid_map",
                       std::to_string(config.gid) + " " + std::to_string(host_gid) + " 1\n")) {
    return std::unexpected(setup_failure("gid_map", std::strerror(errno)));
  }
  if (jail.cgroup) {
    if (auto attached = jail.cgroup->attach(pid, into_cgroup); !attached) {
      return std::unexpected(setup_failure("cgroup_attach", attached.error()));
    }
  }
  char go = 1;
  if (::write(sync_write.get(), &go, 1) != 1) {
    return std::unexpected(setup_failure("sync", std::strerror(errno)));
  }
  // sync_write stays open until the job ends: the child checks for its
  // hang-up to learn whether the engine died during setup.
  jail.out_read = std::move(out_read);
  jail.report_read = std::move(report_read);
  jail.sync_write = std::move(sync_write);
  jail.monitor = MonitorSettings{m_options.monitor_interval_ms, m_options.warn_fraction,
                                 m_options.violation_after, m_options.max_warnings,
                                 values.pids_max};
  return jail;
}

namespace {

void finish_result(LaunchedJail& jail, const ProcessSpec& spec, ProcessResult& result)
{
  jail.init->mark_reaped();
  if (result.verdict == Verdict::setup_failure && result.setup_stage == "execve") {
    result.setup_error += " (" + spec.argv[0] + ")";
  }
  jail.cgroup.reset(); // kills stragglers, removes the job cgroups
}

} // namespace

ProcessResult NamespaceRunner::run(const ProcessSpec& spec)
{
  util::Stopwatch clock;
  auto jail = launch(spec, {});
  if (!jail) {
    return std::move(jail.error());
  }
  ProcessResult result;
  result.warnings = std::move(jail->warnings);
  supervise(jail->job(-1), spec.limits, jail->monitor, result);
  finish_result(*jail, spec, result);
  result.usage.wall_time_ms = clock.elapsed_ms();
  return result;
}

struct RunningJob::State {
  LaunchedJail jail;
  ProcessSpec spec;
  Fd stop_read;
  Fd stop_write;
  ProcessResult result;
  std::atomic<bool> done{false};
  std::mutex stop_mutex;
  std::thread supervisor;
};

std::expected<std::unique_ptr<RunningJob>, ProcessResult>
NamespaceRunner::start(const ProcessSpec& spec, std::vector<util::Fd> inherit)
{
  // Moved to kInheritFdMin or above so placing them at 3, 4, ... in the child
  // cannot overwrite one another.
  std::vector<Fd> high;
  std::vector<int> raw;
  for (auto& fd : inherit) {
    Fd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, kInheritFdMin));
    if (!moved) {
      return std::unexpected(setup_failure("inherit_fd", std::strerror(errno)));
    }
    raw.push_back(moved.get());
    high.push_back(std::move(moved));
  }
  inherit.clear();
  int stop_fds[2];
  if (::pipe2(stop_fds, O_CLOEXEC) != 0) {
    return std::unexpected(setup_failure("pipe", std::strerror(errno)));
  }
  auto state = std::make_unique<RunningJob::State>();
  state->stop_read.reset(stop_fds[0]);
  state->stop_write.reset(stop_fds[1]);
  auto jail = launch(spec, raw);
  high.clear(); // the job has its copies; the engine keeps none
  if (!jail) {
    return std::unexpected(std::move(jail.error()));
  }
  state->jail = std::move(*jail);
  state->spec = spec;
  state->result.warnings = std::move(state->jail.warnings);
  auto* raw_state = state.get();
  state->supervisor = std::thread([raw_state] {
    util::Stopwatch clock;
    supervise(raw_state->jail.job(raw_state->stop_read.get()), raw_state->spec.limits,
              raw_state->jail.monitor, raw_state->result);
    finish_result(raw_state->jail, raw_state->spec, raw_state->result);
    raw_state->result.usage.wall_time_ms = clock.elapsed_ms();
    raw_state->done = true;
  });
  return std::make_unique<RunningJob>(std::move(state));
}

RunningJob::RunningJob(std::unique_ptr<State> state) : m_state(std::move(state)) {}

RunningJob::~RunningJob()
{
  if (m_state->supervisor.joinable()) {
    stop(Verdict::signaled);
    m_state->supervisor.join();
  }
}

void RunningJob::stop(Verdict reason)
{
  std::lock_guard lock(m_state->stop_mutex);
  if (m_state->stop_write) {
    auto byte = static_cast<unsigned char>(reason);
    (void)!::write(m_state->stop_write.get(), &byte, 1);
    m_state->stop_write.reset();
  }
}

const ProcessResult& RunningJob::wait()
{
  if (m_state->supervisor.joinable()) {
    m_state->supervisor.join();
  }
  return m_state->result;
}

bool RunningJob::finished() const { return m_state->done; }

pid_t RunningJob::pid() const { return m_state->jail.init ? m_state->jail.init->pid() : -1; }

} // namespace sandbox::jail
