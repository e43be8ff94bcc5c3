#include "scan/rules.h"

#include "core/options.h"

#include <gtest/gtest.h>

#include <set>

namespace sandbox::scan {
namespace {

TEST(RuleTable, EveryOperationIsOneTheOptionsAccept)
{
  // allowed_operations is validated against core's list: a rule with an
  // operation outside it could never be whitelisted.
  for (const auto& rule : rule_table()) {
    if (rule.safe) continue;
    auto parsed = core::parse_compile_options({{"allowed_operations", {std::string(rule.operation)}}});
    EXPECT_TRUE(parsed) << rule.module << "." << rule.function << ": " << rule.operation;
  }
}

TEST(RuleTable, NoRowIsListedTwice)
{
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (const auto& rule : rule_table()) {
    EXPECT_TRUE(seen.insert({rule.module, rule.function}).second) << rule.module << "." << rule.function;
  }
}

TEST(RuleSet, SideEffectFreeFunctionsOfRestrictedModulesAreNotReported)
{
  RuleSet rules(core::default_restricted_modules(), {});
  EXPECT_FALSE(rules.lookup(":erlang", "float_to_binary"));
  EXPECT_FALSE(rules.lookup(":erlang", "split_binary"));
  EXPECT_FALSE(rules.lookup("Code", "ensure_loaded?"));
  EXPECT_FALSE(rules.lookup("System", "version"));
  EXPECT_EQ(rules.lookup("File", "read!")->severity, Severity::low);
  EXPECT_EQ(rules.lookup(":os", "cmd")->severity, Severity::critical);
  EXPECT_EQ(rules.lookup(":erlang", "open_port")->operation, "port_access");
}

TEST(RuleSet, RestrictedModulesDecideWhatIsChecked)
{
  RuleSet only_os({":os"}, {});
  EXPECT_FALSE(only_os.lookup("System", "cmd"));
  EXPECT_TRUE(only_os.lookup(":os", "cmd"));
  // Networking and distribution are checked whatever the list says.
  EXPECT_TRUE(only_os.lookup(":gen_tcp", "connect"));
  EXPECT_TRUE(only_os.lookup("Node", "connect"));
  RuleSet custom({"MyApp.Danger"}, {});
  EXPECT_EQ(custom.lookup("MyApp.Danger", "anything")->operation, "restricted_module");
}

TEST(RuleSet, AtomsBecomeModuleNames)
{
  EXPECT_EQ(module_from_atom("Elixir.System"), "System");
  EXPECT_EQ(module_from_atom("os"), ":os");
}

} // namespace
} // namespace sandbox::scan
