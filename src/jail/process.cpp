#include "jail/process.h"

#include "util/fs.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

namespace sandbox::jail {

namespace {

std::mutex g_children_mutex;
std::multiset<int> g_children;

// The parent pid from /proc/<pid>/stat (the field after the parenthesised name).
int parent_of(const std::string& pid)
{
  int number = -1;
  std::from_chars(pid.data(), pid.data() + pid.size(), number);
  std::string line = util::read_proc_file(number, "stat");
  if (line.empty()) {
    return -1;
  }
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 4 >= line.size()) {
    return -1;
  }
  auto rest = std::string_view(line).substr(close + 4); // ") S ppid"
  int ppid = -1;
  std::from_chars(rest.data(), rest.data() + rest.size(), ppid);
  return ppid;
}

} // namespace

ChildRegistration::ChildRegistration(int pid) : m_pid(pid)
{
  std::lock_guard lock(g_children_mutex);
  g_children.insert(pid);
}

ChildRegistration::~ChildRegistration()
{
  std::lock_guard lock(g_children_mutex);
  if (auto it = g_children.find(m_pid); it != g_children.end()) {
    g_children.erase(it);
  }
}

int kill_orphaned_children(int budget_ms)
{
  const int self = ::getpid();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
  int killed = 0;
  int quiet_scans = 0;
  while (quiet_scans < 2 && std::chrono::steady_clock::now() < deadline) {
    std::vector<int> orphans;
    for (int pid : util::list_pids()) {
      if (parent_of(std::to_string(pid)) != self) {
        continue;
      }
      std::lock_guard lock(g_children_mutex);
      if (g_children.count(pid) == 0) {
        orphans.push_back(pid);
      }
    }
    for (int pid : orphans) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ++killed;
    }
    if (orphans.empty()) {
      ++quiet_scans;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      quiet_scans = 0;
    }
  }
  return killed;
}

std::vector<char*> exec_array(const std::vector<std::string>& strings)
{
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& item : strings) {
    out.push_back(const_cast<char*>(item.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

std::string_view to_string(Verdict verdict)
{
  switch (verdict) {
  case Verdict::exited: return "exited";
  case Verdict::signaled: return "signaled";
  case Verdict::wall_timeout: return "wall_timeout";
  case Verdict::cpu_time_limit: return "cpu_time_limit";
  case Verdict::memory_limit: return "memory_limit";
  case Verdict::process_limit: return "process_limit";
  case Verdict::output_limit: return "output_limit";
  case Verdict::seccomp_violation: return "seccomp_violation";
  case Verdict::setup_failure: return "setup_failure";
  }
  return "setup_failure";
}

nlohmann::json to_json(const Isolation& isolation)
{
  nlohmann::json out = nlohmann::json::object();
  out["mode"] = isolation.mode;
  for (const auto& [name, active] : isolation.layers) {
    out[name] = active;
  }
  out["enforced_limits"] = isolation.enforced_limits;
  return out;
}

nlohmann::json to_json(const ResourceUsage& usage)
{
  return {{"peak_memory_bytes", usage.peak_memory_bytes},
          {"cpu_time_ms", usage.cpu_time_ms},
          {"wall_time_ms", usage.wall_time_ms}};
}

} // namespace sandbox::jail
