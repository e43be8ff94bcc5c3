// Job cgroups: layout detection, limit values, the writes that apply them,
// sampling, killing the whole tree, and removal (also of stale job cgroups a
// crashed engine left behind).

#include "jail/cgroup.h"

#include "util/fd.h"
#include "util/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>
#include <thread>

namespace sandbox::jail {

namespace {

constexpr const char* kV1Controllers[] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

std::vector<std::string_view> split(std::string_view text, char separator)
{
  std::vector<std::string_view> parts;
  while (true) {
    auto pos = text.find(separator);
    parts.push_back(text.substr(0, pos));
    if (pos == std::string_view::npos) {
      return parts;
    }
    text.remove_prefix(pos + 1);
  }
}

fs::path join_cgroup(const fs::path& mount_point, std::string_view mount_root, std::string_view own)
{
  // The engine's cgroup as seen from this mount: strip the mount's root
  // (a container may mount only its own subtree).
  std::string_view rel = own;
  if (mount_root != "/" && rel.starts_with(mount_root)) {
    rel.remove_prefix(mount_root.size());
  }
  while (rel.starts_with('/')) {
    rel.remove_prefix(1);
  }
  return rel.empty() ? mount_point : mount_point / fs::path(rel);
}

std::optional<std::uint64_t> to_u64(std::string_view text)
{
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> read_small(const fs::path& path)
{
  auto text = util::read_file(path, 1 << 20);
  if (!text) {
    return std::nullopt;
  }
  return *text;
}

std::optional<std::uint64_t> read_u64(const fs::path& path)
{
  auto text = read_small(path);
  return text ? to_u64(*text) : std::nullopt;
}

// "key value" lines (memory.events, pids.events, cpu.stat, oom_control).
std::optional<std::uint64_t> read_key(const fs::path& path, std::string_view key)
{
  auto text = read_small(path);
  if (!text) {
    return std::nullopt;
  }
  for (auto line : split(*text, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() == 2 && fields[0] == key) {
      return to_u64(fields[1]);
    }
  }
  return std::nullopt;
}

bool write_text(const fs::path& path, std::string_view value)
{
  util::Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    return false;
  }
  return ::write(fd.get(), value.data(), value.size()) == static_cast<ssize_t>(value.size());
}

std::vector<int> read_pids(const fs::path& dir)
{
  std::vector<int> pids;
  auto text = read_small(dir / "cgroup.procs");
  if (!text) {
    return pids;
  }
  for (auto line : split(*text, '\n')) {
    if (auto pid = to_u64(line); pid && *pid > 0) {
      pids.push_back(static_cast<int>(*pid));
    }
  }
  return pids;
}

bool populated(const fs::path& dir, bool v2)
{
  if (v2) {
    if (auto value = read_key(dir / "cgroup.events", "populated")) {
      return *value != 0;
    }
  }
  return !read_pids(dir).empty();
}

// Freezes (so nothing forks while we kill), SIGKILLs every task, thaws (so
// the signals are delivered).
void freezer_kill(const fs::path& dir)
{
  write_text(dir / "freezer.state", "FROZEN");
  for (int i = 0; i < 100; ++i) {
    auto state = read_small(dir / "freezer.state");
    if (!state || state->starts_with("FROZEN")) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int pid : read_pids(dir)) {
    ::kill(pid, SIGKILL);
  }
  write_text(dir / "freezer.state", "THAWED");
}

void kill_in(const fs::path& dir, bool v2)
{
  if (v2 && write_text(dir / "cgroup.kill", "1")) {
    return;
  }
  for (int round = 0; round < 3; ++round) {
    for (int pid : read_pids(dir)) {
      ::kill(pid, SIGKILL);
    }
  }
}

} // namespace

std::optional<fs::path> CgroupLayout::parent_for(std::string_view controller) const
{
  if (auto it = v1.find(std::string(controller)); it != v1.end()) {
    return it->second;
  }
  if (on_v2(controller)) {
    return unified;
  }
  return std::nullopt;
}

bool CgroupLayout::on_v2(std::string_view controller) const
{
  return unified && !v1.contains(std::string(controller)) &&
         std::ranges::find(v2_controllers, controller) != v2_controllers.end();
}

std::string CgroupLayout::describe() const
{
  if (!v1.empty() && unified) {
    return "hybrid";
  }
  if (!v1.empty()) {
    return "v1";
  }
  return unified ? "v2" : "none";
}

CgroupLayout parse_cgroup_layout(std::string_view mountinfo, std::string_view self_cgroup,
                                 std::string_view v2_subtree_control)
{
  // The engine's own cgroup per v1 controller and on v2.
  std::map<std::string, std::string, std::less<>> own;
  std::optional<std::string> own_v2;
  for (auto line : split(self_cgroup, '\n')) {
    auto fields = split(line, ':');
    if (fields.size() < 3) {
      continue;
    }
    std::string path(line.substr(fields[0].size() + fields[1].size() + 2));
    if (fields[0] == "0" && fields[1].empty()) {
      own_v2 = path;
      continue;
    }
    for (auto controller : split(fields[1], ',')) {
      own[std::string(controller)] = path;
    }
  }

  CgroupLayout layout;
  for (auto line : split(mountinfo, '\n')) {
    auto dash = line.find(" - ");
    if (dash == std::string_view::npos) {
      continue;
    }
    auto left = split(line.substr(0, dash), ' ');
    auto right = split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) {
      continue;
    }
    std::string_view root = left[3];
    fs::path mount_point{std::string(left[4])};
    if (right[0] == "cgroup2" && !layout.unified && own_v2) {
      layout.unified = join_cgroup(mount_point, root, *own_v2);
    } else if (right[0] == "cgroup") {
      for (auto option : split(right[2], ',')) {
        for (const char* controller : kV1Controllers) {
          if (option == controller && !layout.v1.contains(controller)) {
            auto it = own.find(controller);
            layout.v1[controller] =
                join_cgroup(mount_point, root, it != own.end() ? it->second : "/");
          }
        }
      }
    }
  }
  for (auto controller : split(v2_subtree_control, ' ')) {
    while (!controller.empty() && controller.back() == '\n') {
      controller.remove_suffix(1);
    }
    if (!controller.empty()) {
      layout.v2_controllers.emplace_back(controller);
    }
  }
  return layout;
}

std::expected<CgroupLayout, std::string> detect_cgroup_layout()
{
  auto mountinfo = util::read_file("/proc/self/mountinfo", 16 << 20);
  auto self = util::read_file("/proc/self/cgroup", 1 << 20);
  if (!mountinfo || !self) {
    return std::unexpected(!mountinfo ? mountinfo.error() : self.error());
  }
  auto layout = parse_cgroup_layout(*mountinfo, *self, "");
  if (layout.unified) {
    auto subtree = read_small(*layout.unified / "cgroup.subtree_control");
    if (layout.v1.empty() && subtree) {
      // Pure v2: ask for the controllers we need. This fails (EBUSY) when
      // the engine's cgroup has processes and is not the root; the layout
      // then reports them missing and the runner says so.
      for (const char* controller : {"+memory", "+pids", "+cpu"}) {
        write_text(*layout.unified / "cgroup.subtree_control", controller);
      }
      subtree = read_small(*layout.unified / "cgroup.subtree_control");
    }
    layout = parse_cgroup_layout(*mountinfo, *self, subtree.value_or(""));
  }
  return layout;
}

CgroupValues cgroup_values(const Limits& limits, const CgroupTuning& tuning, unsigned ncpus)
{
  ncpus = std::max(ncpus, 1u);
  CgroupValues values;
  values.memory_bytes = limits.memory_bytes;
  int allowance =
      tuning.thread_allowance >= 0 ? tuning.thread_allowance : 2 * static_cast<int>(ncpus) + 32;
  values.pids_max = static_cast<std::uint64_t>(std::max(limits.max_processes, 1) + allowance);
  values.cpu_period_us = tuning.cpu_period_us;
  double machine = 100.0 * ncpus;
  if (limits.cpu_percent <= 0 || limits.cpu_percent >= machine) {
    values.cpu_quota_us = -1;
  } else {
    values.cpu_quota_us = std::max<std::int64_t>(
        1000, std::llround(limits.cpu_percent / 100.0 * static_cast<double>(tuning.cpu_period_us) *
                           ncpus));
  }
  return values;
}

std::vector<CgroupWrite> cgroup_writes(const CgroupValues& values, const CgroupLayout& layout)
{
  std::vector<CgroupWrite> writes;
  std::string memory = std::to_string(values.memory_bytes);
  if (layout.v1.contains("memory")) {
    writes.push_back({"memory", "memory.limit_in_bytes", memory});
    // memsw counts memory plus swap: equal to the limit means no swap.
    writes.push_back({"memory", "memory.memsw.limit_in_bytes", memory, false});
  } else if (layout.on_v2("memory")) {
    writes.push_back({"memory", "memory.max", memory});
    writes.push_back({"memory", "memory.swap.max", "0", false});
    writes.push_back({"memory", "memory.oom.group", "1", false});
  }
  if (layout.parent_for("pids")) {
    writes.push_back({"pids", "pids.max", std::to_string(values.pids_max)});
  }
  std::string period = std::to_string(values.cpu_period_us);
  std::string quota = values.cpu_quota_us < 0 ? "" : std::to_string(values.cpu_quota_us);
  if (layout.v1.contains("cpu")) {
    writes.push_back({"cpu", "cpu.cfs_period_us", period});
    writes.push_back({"cpu", "cpu.cfs_quota_us", quota.empty() ? "-1" : quota});
  } else if (layout.on_v2("cpu")) {
    writes.push_back({"cpu", "cpu.max", (quota.empty() ? "max" : quota) + " " + period});
  }
  return writes;
}

std::string job_cgroup_name(int pid, std::uint64_t counter)
{
  return std::string(kJobCgroupPrefix) + std::to_string(pid) + "-" + std::to_string(counter);
}

std::expected<JobCgroup, std::string>
JobCgroup::create(const CgroupLayout& layout, const std::string& name, const CgroupValues& values)
{
  JobCgroup group;
  auto make = [&](const fs::path& dir) -> std::expected<void, std::string> {
    if (std::ranges::find(group.m_created, dir) != group.m_created.end()) {
      return {};
    }
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return std::unexpected(util::errno_message("mkdir " + dir.string()));
    }
    group.m_created.push_back(dir);
    return {};
  };
  for (const auto& [controller, parent] : layout.v1) {
    fs::path dir = parent / name;
    if (auto ok = make(dir); !ok) {
      return std::unexpected(ok.error());
    }
    group.m_dirs[controller] = dir;
  }
  if (layout.unified) {
    fs::path dir = *layout.unified / name;
    if (auto ok = make(dir); !ok) {
      return std::unexpected(ok.error());
    }
    group.m_dirs["unified"] = dir;
    for (const auto& controller : layout.v2_controllers) {
      group.m_dirs.try_emplace(controller, dir);
    }
    group.m_unified_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  for (const auto& write : cgroup_writes(values, layout)) {
    auto dir = group.dir_for(write.controller);
    if (!dir) {
      continue;
    }
    if (!write_text(*dir / write.file, write.value) && write.required) {
      return std::unexpected(
          util::errno_message("write " + write.value + " to " + (*dir / write.file).string()));
    }
  }
  return group;
}

JobCgroup::JobCgroup(JobCgroup&& other) noexcept
    : m_dirs(std::move(other.m_dirs)), m_created(std::move(other.m_created)),
      m_unified_fd(std::exchange(other.m_unified_fd, -1))
{
  other.m_dirs.clear();
  other.m_created.clear();
}

JobCgroup& JobCgroup::operator=(JobCgroup&& other) noexcept
{
  if (this != &other) {
    remove();
    m_dirs = std::move(other.m_dirs);
    m_created = std::move(other.m_created);
    m_unified_fd = std::exchange(other.m_unified_fd, -1);
    other.m_dirs.clear();
    other.m_created.clear();
  }
  return *this;
}

JobCgroup::~JobCgroup()
{
  remove();
}

std::optional<fs::path> JobCgroup::dir_for(std::string_view controller) const
{
  if (auto it = m_dirs.find(std::string(controller)); it != m_dirs.end()) {
    return it->second;
  }
  return std::nullopt;
}

bool JobCgroup::has(std::string_view controller) const
{
  return m_dirs.contains(std::string(controller));
}

std::vector<fs::path> JobCgroup::directories() const
{
  return m_created;
}

std::expected<void, std::string> JobCgroup::attach(int pid, bool skip_unified) const
{
  std::string text = std::to_string(pid);
  auto unified = dir_for("unified");
  for (const auto& dir : m_created) {
    if (skip_unified && unified && dir == *unified) {
      continue;
    }
    if (!write_text(dir / "cgroup.procs", text)) {
      return std::unexpected(util::errno_message("attach to " + dir.string()));
    }
  }
  return {};
}

CgroupSample JobCgroup::sample() const
{
  CgroupSample sample;
  if (auto dir = dir_for("memory")) {
    bool v1 = fs::exists(*dir / "memory.limit_in_bytes");
    if (v1) {
      sample.memory_bytes = read_u64(*dir / "memory.usage_in_bytes").value_or(0);
      sample.memory_peak = read_u64(*dir / "memory.max_usage_in_bytes").value_or(0);
      sample.oom_kills = read_key(*dir / "memory.oom_control", "oom_kill").value_or(0);
    } else {
      sample.memory_bytes = read_u64(*dir / "memory.current").value_or(0);
      sample.memory_peak = read_u64(*dir / "memory.peak").value_or(0);
      sample.oom_kills = read_key(*dir / "memory.events", "oom_kill").value_or(0);
    }
  }
  if (auto dir = dir_for("pids")) {
    sample.pids = read_u64(*dir / "pids.current").value_or(0);
    sample.pids_peak = read_u64(*dir / "pids.peak").value_or(sample.pids);
    sample.pids_max_hits = read_key(*dir / "pids.events", "max").value_or(0);
  }
  // CPU of the whole tree: v2 cpu.stat works even without the cpu controller.
  if (auto dir = dir_for("unified")) {
    if (auto usec = read_key(*dir / "cpu.stat", "usage_usec")) {
      sample.cpu_ns = static_cast<std::int64_t>(*usec) * 1000;
      return sample;
    }
  }
  if (auto dir = dir_for("cpuacct")) {
    if (auto ns = read_u64(*dir / "cpuacct.usage")) {
      sample.cpu_ns = static_cast<std::int64_t>(*ns);
    }
  }
  return sample;
}

std::string JobCgroup::kill_all() const
{
  if (auto dir = dir_for("unified"); dir && write_text(*dir / "cgroup.kill", "1")) {
    return "cgroup.kill";
  }
  if (auto dir = dir_for("freezer")) {
    freezer_kill(*dir);
    return "freezer";
  }
  for (const auto& dir : m_created) {
    kill_in(dir, false);
  }
  return "sigkill";
}

bool JobCgroup::empty() const
{
  auto unified = dir_for("unified");
  return std::ranges::none_of(
      m_created, [&](const fs::path& dir) { return populated(dir, unified && dir == *unified); });
}

void JobCgroup::remove(int wait_ms)
{
  if (m_unified_fd >= 0) {
    ::close(m_unified_fd);
    m_unified_fd = -1;
  }
  if (m_created.empty()) {
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  if (!empty()) {
    kill_all();
  }
  for (auto it = m_created.rbegin(); it != m_created.rend(); ++it) {
    while (::rmdir(it->c_str()) != 0 && errno == EBUSY &&
           std::chrono::steady_clock::now() < deadline) {
      kill_in(*it, false);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  m_created.clear();
  m_dirs.clear();
}

std::vector<fs::path> remove_stale_cgroups(const CgroupLayout& layout)
{
  std::set<fs::path> parents;
  for (const auto& [controller, dir] : layout.v1) {
    parents.insert(dir);
  }
  if (layout.unified) {
    parents.insert(*layout.unified);
  }
  std::vector<fs::path> removed;
  for (const auto& parent : parents) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
      std::string name = entry.path().filename().string();
      if (!name.starts_with(kJobCgroupPrefix) || !entry.is_directory(ec)) {
        continue;
      }
      std::string_view rest = std::string_view(name).substr(kJobCgroupPrefix.size());
      auto pid = to_u64(rest.substr(0, rest.find('-')));
      if (!pid || static_cast<pid_t>(*pid) == ::getpid()) {
        continue;
      }
      if (::kill(static_cast<pid_t>(*pid), 0) == 0 || errno == EPERM) {
        continue; // its engine still runs
      }
      bool v2 = layout.unified && parent == *layout.unified;
      for (int attempt = 0; attempt < 100; ++attempt) {
        kill_in(entry.path(), v2);
        if (::rmdir(entry.path().c_str()) == 0 || errno != EBUSY) {
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (!fs::exists(entry.path(), ec)) {
        removed.push_back(entry.path());
      }
    }
  }
  return removed;
}

} // namespace sandbox::jail
