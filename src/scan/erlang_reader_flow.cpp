// The value-flow bookkeeping of the Erlang reader (scan/erlang_reader.h):
// the atoms and built module names written as values and the calls on
// modules not known statically, judged for the whole file by
// scan/value_flow.h when the file is read; and the findings, with their
// position, matched text and surrounding lines.

#include "scan/erlang_reader.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

namespace sandbox::scan::erlang {

ValueFlow::Place Reader::place_of(std::size_t i) const
{
  const auto& t = m_tokens[i];
  ValueFlow::Place place{t.line, t.column, clip(t.text, 80), 0, "", {0, 0}};
  if (!m_open.empty()) {
    auto offset = static_cast<std::uint32_t>(m_tokens[m_open.back()].text.data() - m_source.data());
    place.group = {offset, offset + 1};
  }
  return place;
}

// An atom written as a value: a module of the rule table, or a function
// name. Not a record's name or field, nor the module apply is given.
void Reader::note_atom(std::size_t i)
{
  if (m_in_record || m_judged.contains(i) || is_punct(i + 1, ":") || is_punct(i + 1, "=") ||
      (i > 0 && (is_punct(i - 1, "#") || is_punct(i - 1, ".")))) {
    return;
  }
  const auto& t = m_tokens[i];
  m_flow.note_module(module_from_atom(t.value), place_of(i));
  m_flow.note_name(t.value, place_of(i));
}

// list_to_atom(...) and kin at `at`, the call ending before `end`: a
// module folded from a constant, or one computed at run time.
void Reader::note_builder(std::size_t at, std::size_t end)
{
  if (m_judged.contains(at)) return;
  auto module = module_at(at, end);
  if (module.known) {
    m_flow.note_module(module.name, place_of(at));
  } else if (module.dynamic) {
    auto place = place_of(at);
    place.via = module.name;
    m_flow.note_computed(place);
  }
}

// A call on a module not known statically: judged by finish(), its
// finding (the low warning, or a placeholder) kept in the order of the code.
void Reader::note_dynamic_call(std::size_t at, std::optional<std::string> function, std::optional<std::uint32_t> arity,
                               std::string text, std::optional<std::string> warning)
{
  report(at, warning ? "dynamic_dispatch" : "", warning ? "dynamic_dispatch" : "", Severity::low,
         warning.value_or(""), std::nullopt, std::nullopt, std::nullopt);
  m_dynamic_calls.emplace_back(m_findings.size() - 1, ValueFlow::Call{std::move(function), arity, std::move(text)});
}

void Reader::finish()
{
  for (const auto& [index, call] : m_dynamic_calls) {
    if (auto finding = m_flow.judge(call, m_findings[index], m_report.scan_depth())) {
      m_findings[index] = std::move(*finding);
    }
  }
  for (auto& finding : m_findings) {
    if (!finding.type.empty()) m_report.add(std::move(finding));
  }
  m_findings.clear();
}

void Reader::report(std::size_t at, std::string type, std::string operation, Severity severity, std::string message,
                    std::optional<std::string> module, std::optional<std::string> function,
                    std::optional<std::uint32_t> arity)
{
  const auto& t = m_tokens[at];
  Finding finding;
  finding.type = std::move(type);
  finding.operation = std::move(operation);
  finding.severity = severity;
  finding.message = std::move(message);
  finding.file = std::string(m_file);
  finding.line = t.line;
  finding.column = t.column;
  std::size_t end = std::min(m_tokens.size(), at + 6);
  auto begin_offset = static_cast<std::size_t>(t.text.data() - m_source.data());
  auto last = m_tokens[end - 1].text;
  auto end_offset = static_cast<std::size_t>(last.data() - m_source.data()) + last.size();
  finding.matched_text = clip(m_source.substr(begin_offset, end_offset - begin_offset), 120);
  finding.surrounding_code = surrounding_lines(m_source, t.line);
  finding.module = std::move(module);
  finding.function = std::move(function);
  finding.arity = arity;
  m_findings.push_back(std::move(finding));
}

} // namespace sandbox::scan::erlang
