#pragma once
// Shared by the adversarial suites: each test compiles hostile code through
// build/sandbox; afterwards no job cgroup may be left, and a failed job must
// leave no temp dir.

#include "support.h"

#include <set>
#include <string>
#include <vector>

namespace sandbox::test::adversarial {

std::string random_token(const std::string& prefix);
std::set<std::string> job_cgroups();
std::vector<std::string> leaked_cgroups(const std::set<std::string>& before);
bool wait_until_gone(const std::string& marker);

// `body` as the body of a module Attack.
std::string attack_module_source(const std::string& body);

class LeakCheckedTest : public SandboxTest {
protected:
  void SetUp() override;
  void TearDown() override;

  // Compiles and records whether it succeeded (a success keeps its temp dir).
  RunResult run_compile(const fs::path& path, const std::vector<std::string>& args,
                        RunOptions options = {}) const;
  // A module body compiled with elixirc.
  RunResult attack(const std::string& body, const std::vector<std::string>& args = {},
                   RunOptions options = {});

private:
  std::set<std::string> m_cgroups_before;
  int m_count = 0;
  mutable bool m_last_ok = false;
};

} // namespace sandbox::test::adversarial
