#include "scan/rules.h"

#include "core/options.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>

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

TEST(MfaCallTable, EachRowNamesItsModuleFunctionAndListWithinItsArity)
{
  std::set<std::tuple<std::string_view, std::string_view, std::uint32_t>> seen;
  for (const auto& row : mfa_call_table()) {
    EXPECT_TRUE(seen.emplace(row.module, row.function, row.arity).second) << row.module << "." << row.function;
    EXPECT_LT(row.module_argument + 2, row.arity) << row.module << "." << row.function << "/" << row.arity;
    EXPECT_FALSE(row.where.empty());
    EXPECT_EQ(find_mfa_call(row.module, row.function, row.arity), &row);
  }
  EXPECT_EQ(find_mfa_call("Kernel", "spawn", 3)->module_argument, 0u);
  EXPECT_EQ(find_mfa_call(":timer", "apply_after", 4)->module_argument, 1u);
  EXPECT_EQ(find_mfa_call("Task.Supervisor", "start_child", 4)->module_argument, 1u);
  // A fun, not M, F, A.
  EXPECT_EQ(find_mfa_call("Kernel", "spawn", 1), nullptr);
  EXPECT_EQ(find_mfa_call("Task.Supervisor", "start_child", 3), nullptr);
  EXPECT_EQ(find_mfa_call(":timer", "sleep", 1), nullptr);
}

TEST(MfaCallTable, ItsCallsAreVocabulary)
{
  // The prefilter keeps every block that calls one (scan/elixir_prefilter.h).
  RuleSet rules({":os"}, {});
  for (const auto& row : mfa_call_table()) {
    EXPECT_TRUE(rules.module_matters(row.module)) << row.module;
    EXPECT_TRUE(rules.call_matters(row.module, row.function)) << row.module << "." << row.function;
  }
  EXPECT_FALSE(rules.call_matters(":timer", "sleep"));
  EXPECT_FALSE(rules.call_matters("Process", "sleep"));
}

TEST(RuleSet, AtomsBecomeModuleNames)
{
  EXPECT_EQ(module_from_atom("Elixir.System"), "System");
  EXPECT_EQ(module_from_atom("os"), ":os");
}

} // namespace
} // namespace sandbox::scan
