#include "jail/namespace_runner.h"

#include <gtest/gtest.h>

namespace sandbox::jail {
namespace {

TEST(NamespaceRunner, EchoHi)
{
  NamespaceRunner runner;
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo hi; id; ls /; cat /proc/self/cgroup"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.cwd = "/";
  auto result = runner.run(spec);
  EXPECT_EQ(result.verdict, Verdict::exited) << result.setup_stage << ": " << result.setup_error;
  EXPECT_EQ(result.exit_code, 0);
  std::cerr << result.output;
  for (auto& n : runner.notes())
    std::cerr << n << "\n";
  for (auto& n : result.warnings)
    std::cerr << n << "\n";
}

} // namespace
} // namespace sandbox::jail
