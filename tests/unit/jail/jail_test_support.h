#pragma once
// Helpers for the jail's real-process tests: a job temp dir, specs with the
// usual environment, C helpers compiled at test time, and checks that no job
// cgroup or process outlives a run.

#include "jail/namespace_runner.h"
#include "jail/probe.h"
#include "util/fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <string>

namespace sandbox::jail::testing {

inline std::string write_text(const fs::path& path, const std::string& text)
{
  std::ofstream out(path);
  out << text;
  return path.string();
}

class JailTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    if (!jail_supported()) {
      GTEST_SKIP() << "the namespace jail is not supported here: " << why_unsupported();
    }
    auto dir = util::TempDir::create(util::default_temp_root(), "jail-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_job.emplace(std::move(*dir));
    ::chmod(job().c_str(), 0755);
  }

  void TearDown() override
  {
    if (m_runner && m_runner->cgroup_layout()) {
      EXPECT_EQ(leftover_cgroups(), "") << "job cgroups left behind";
    }
  }

  [[nodiscard]] const fs::path& job() const { return m_job->path(); }

  NamespaceRunner& runner(NamespaceRunnerOptions options = {})
  {
    if (!m_runner) {
      options.mounts.toolchain.push_back("/usr/bin/sleep");
      options.mounts.toolchain.push_back("/usr/bin/setsid");
      m_runner.emplace(std::move(options));
    }
    return *m_runner;
  }

  ProcessSpec spec(std::vector<std::string> argv) const
  {
    ProcessSpec spec;
    spec.argv = std::move(argv);
    spec.env = {"PATH=/usr/bin:/bin", "HOME=/job", "LANG=C.UTF-8"};
    spec.cwd = "/job";
    spec.binds.push_back({job(), "/job", true});
    spec.limits.wall_timeout_ms = 20'000;
    return spec;
  }

  ProcessSpec shell(const std::string& script) const { return spec({"/bin/sh", "-c", script}); }

  // Compiles a C program into the job dir; returns its path inside the jail.
  std::string compile_helper(const std::string& name, const std::string& source)
  {
    fs::path src = job() / (name + ".c");
    write_text(src, source);
    std::string command = "cc -O1 -o " + (job() / name).string() + " " + src.string() + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return "/job/" + name;
  }

  // Job cgroups of this process still present, in any hierarchy.
  // Job cgroups of the engine process `pid` (by default this one) that exist.
  std::string leftover_cgroups(pid_t pid = ::getpid()) const
  {
    std::string left;
    const auto& layout = *m_runner->cgroup_layout();
    std::vector<fs::path> parents;
    for (const auto& [controller, dir] : layout.v1) {
      parents.push_back(dir);
    }
    if (layout.unified) {
      parents.push_back(*layout.unified);
    }
    std::string prefix = std::string(kJobCgroupPrefix) + std::to_string(pid) + "-";
    for (const auto& parent : parents) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(parent, ec)) {
        if (entry.path().filename().string().starts_with(prefix)) {
          left += entry.path().string() + " ";
        }
      }
    }
    return left;
  }

  static std::string why_unsupported()
  {
    std::string why;
    for (const auto& probe : probe_isolation()) {
      if (!probe.works) {
        why += probe.name + ": " + probe.detail + "; ";
      }
    }
    return why;
  }

  std::optional<util::TempDir> m_job;
  std::optional<NamespaceRunner> m_runner;
};

inline std::string describe(const ProcessResult& result)
{
  std::string text = "verdict " + std::string(to_string(result.verdict)) + " exit " +
                     std::to_string(result.exit_code) + " signal " + std::to_string(result.signal);
  if (result.verdict == Verdict::setup_failure) {
    text += " stage " + result.setup_stage + ": " + result.setup_error;
  }
  return text + "\noutput: " + result.output.substr(0, 4000);
}

} // namespace sandbox::jail::testing
