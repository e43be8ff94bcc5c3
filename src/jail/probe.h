#pragma once
// What the jail can use on this machine, found by trying each layer with the
// real system call in a throwaway child. `sandbox doctor` prints this;
// compiling refuses to run unjailed unless jail_supported() or the caller
// opts into a weaker mode.

#include <string>
#include <vector>

namespace sandbox::jail {

struct LayerProbe {
  std::string name; // "user_ns", "pid_ns", ..., "seccomp", "cgroup.memory", "pivot_root"
  bool works = false;
  std::string detail; // what was tried; on failure the errno text and what it means
};

std::vector<LayerProbe> probe_isolation();

// User, mount and pid namespaces and seccomp all work (the result is computed
// once per process).
bool jail_supported();

} // namespace sandbox::jail
