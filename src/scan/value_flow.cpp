#include "scan/value_flow.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace sandbox::scan {

namespace {

bool earlier(const ValueFlow::Place& a, const ValueFlow::Place& b)
{
  return a.line != b.line ? a.line < b.line : a.column < b.column;
}

bool listed(const std::vector<std::string>& functions, const std::string& function)
{
  return std::find(functions.begin(), functions.end(), function) != functions.end();
}

std::string upper(Severity severity)
{
  std::string out(to_string(severity));
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

} // namespace

bool ValueFlow::note_module(const std::string& module, const Place& place)
{
  if (m_rules.value_flow_functions(module).empty()) return false;
  auto [it, inserted] = m_modules.try_emplace(module, place);
  if (!inserted && earlier(place, it->second)) it->second = place;
  if (place.group.second != 0) m_grouped_values.emplace_back(module, place);
  return inserted;
}

void ValueFlow::note_computed(const Place& place)
{
  if (!m_computed || earlier(place, *m_computed)) m_computed = place;
}

void ValueFlow::note_name(const std::string& name, const Place& place)
{
  if (place.group.second != 0 && m_rules.is_value_flow_function(name)) m_grouped_names.emplace_back(name, place);
}

// The first value and name of each (module, function) written in one group.
void ValueFlow::pair_written_together()
{
  if (m_paired) return;
  m_paired = true;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<const std::pair<std::string, Place>*>> groups;
  for (const auto& value : m_grouped_values) groups[value.second.group].push_back(&value);
  for (const auto& [name, named] : m_grouped_names) {
    auto group = groups.find(named.group);
    if (group == groups.end()) continue;
    for (const auto* value : group->second) {
      if (listed(m_rules.value_flow_functions(value->first), name)) {
        m_together.try_emplace({value->first, name}, &value->second, &named);
      }
    }
  }
}

struct ValueFlow::Pairing {
  Rule rule;
  std::string module;
  std::string function;
  const Place* value = nullptr;
  const Place* name = nullptr;
};

std::optional<Finding> ValueFlow::judge(const Call& call, const Finding& at, int depth)
{
  std::optional<Pairing> best;
  auto consider = [&](const std::string& module, const std::string& function, const Place& value,
                      const Place* name) {
    auto rule = m_rules.lookup(module, function);
    if (!rule || rule->severity == Severity::low) return;
    if (best && (rule->severity < best->rule.severity ||
                 (rule->severity == best->rule.severity && !earlier(value, *best->value)))) {
      return;
    }
    best = Pairing{*rule, module, function, &value, name};
  };
  if (call.function) {
    for (const auto& [module, value] : m_modules) {
      if (listed(m_rules.value_flow_functions(module), *call.function)) consider(module, *call.function, value, nullptr);
    }
    if (!best && m_computed) {
      if (auto rule = m_rules.strongest_rule_named(*call.function)) {
        best = Pairing{*rule, std::string(rule->module), *call.function, &*m_computed, nullptr};
      }
    }
  } else {
    pair_written_together();
    for (const auto& [key, places] : m_together) consider(key.first, key.second, *places.first, places.second);
  }
  if (!best) return std::nullopt;

  Finding finding = at;
  finding.module = best->module;
  finding.function = best->function;
  finding.arity = call.arity;
  bool computed = m_computed && best->value == &*m_computed;
  finding.related = RelatedPlace{best->value->line, best->value->column, best->value->text,
                                 computed ? "module computed at run time, used as a value" : "module used as a value"};
  auto target = display_call(best->module, best->function);
  int hops = best->value->hops + 1;
  if (hops > depth) {
    finding.type = "unresolved_indirection";
    finding.operation = "dynamic_dispatch";
    finding.severity = Severity::low;
    finding.message = fmt::format("{} can reach {} through a module value, {} levels of indirection, beyond "
                                  "scan_depth {}: not followed",
                                  call.text, target, hops, depth);
    return finding;
  }
  finding.type = "value_flow";
  finding.operation = std::string(best->rule.operation);
  finding.severity = best->rule.severity;
  std::string value = computed ? fmt::format("{} at line {} builds a module at run time, which can be {}",
                                             best->value->text, best->value->line, best->module)
                               : fmt::format("{} is used as a value at line {}{}", best->module, best->value->line,
                                             best->value->via.empty() ? "" : " (" + best->value->via + ")");
  std::string named = best->name ? fmt::format(", :{} is named at line {},", best->function, best->name->line) : "";
  std::string what = call.function ? fmt::format("calls {}", best->function) : "calls a computed function";
  finding.message = fmt::format("{} reachable through a module value: {}{} and {} at line {} {} on a module not "
                                "known statically [{} RISK]",
                                target, value, named, call.text, at.line, what, upper(best->rule.severity));
  return finding;
}

} // namespace sandbox::scan
