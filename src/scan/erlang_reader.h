#pragma once
// The reader of an Erlang token stream behind scan_erlang_source
// (scan/erlang_scanner.h), internal to the scan layer. It reads the tokens
// of one file in order for remote calls, funs, apply, imports, auto-imported
// BIFs and -on_load and asks the rule table; what a call on a module not
// known statically may reach is judged for the whole file at the end
// (scan/value_flow.h).
//
// Its definitions are split by concern: the reading of forms and calls
// (erlang_reader.cpp), and the value-flow bookkeeping with the building of
// findings (erlang_reader_flow.cpp).

#include "scan/erlang_scanner.h"
#include "scan/findings.h"
#include "scan/rules.h"
#include "scan/value_flow.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::scan::erlang {

using Kind = ErlangToken::Kind;

class Reader {
public:
  Reader(std::string_view file, std::string_view source, std::vector<ErlangToken> tokens, Report& report);

  // Reads the whole file and adds its findings to the report.
  void run();

private:
  [[nodiscard]] Kind kind_at(std::size_t i) const
  {
    return i < m_tokens.size() ? m_tokens[i].kind : Kind::end_of_form;
  }
  [[nodiscard]] bool is_punct(std::size_t i, std::string_view text) const
  {
    return i < m_tokens.size() && m_tokens[i].kind == Kind::punct && m_tokens[i].text == text;
  }

  // --- forms and calls (erlang_reader.cpp) ----------------------------------
  [[nodiscard]] bool preceded_by_remote(std::size_t i) const;
  [[nodiscard]] std::size_t closing(std::size_t open) const;
  [[nodiscard]] std::vector<std::size_t> arguments(std::size_t open) const;
  std::size_t skip_form(std::size_t i) const;
  std::size_t attribute(std::size_t dash);
  void fun_reference(std::size_t i);
  static std::optional<std::uint32_t> to_arity(std::string_view text);
  std::optional<std::string> imported(std::string_view name) const;
  void remote_call(std::size_t i);
  void local_call(std::size_t i);

  // The module a token sequence names: an atom, or list_to_atom("os") and kin.
  struct Module {
    bool known = false;
    bool dynamic = false;
    std::string name;
  };

  Module module_at(std::size_t i, std::size_t end) const;
  void apply(std::size_t at, std::size_t open, std::string_view how);
  void mfa_call(std::size_t at, std::size_t open, const std::string& module, const std::string& function,
                std::string how);
  void judge_mfa(std::size_t at, const std::vector<std::size_t>& args, std::size_t close, std::size_t k,
                 std::uint32_t prepended, std::string_view how, std::string_view where, int nested = 0);
  void check_call(std::size_t at, const std::string& module, const std::string& function,
                  std::optional<std::uint32_t> arity, std::optional<std::size_t> first_arg, std::string_view how);

  // --- value flow and findings (erlang_reader_flow.cpp) ---------------------
  ValueFlow::Place place_of(std::size_t i) const;
  void note_atom(std::size_t i);
  void note_builder(std::size_t at, std::size_t end);
  void note_dynamic_call(std::size_t at, std::optional<std::string> function, std::optional<std::uint32_t> arity,
                         std::string text, std::optional<std::string> warning);
  void finish();
  void report(std::size_t at, std::string type, std::string operation, Severity severity, std::string message,
              std::optional<std::string> module, std::optional<std::string> function,
              std::optional<std::uint32_t> arity);

  std::string_view m_file;
  std::string_view m_source;
  std::vector<ErlangToken> m_tokens;
  Report& m_report;
  std::vector<std::pair<std::string, std::string>> m_imports; // function -> module atom
  std::string m_module; // the -module attribute's name: what ?MODULE is
  bool m_in_define = false;
  bool m_in_record = false;
  std::vector<std::size_t> m_open;  // the brackets open around the token being read
  std::set<std::size_t> m_judged;   // atoms that are the module of an apply
  std::vector<Finding> m_findings;  // reported when the file is read (finish)
  ValueFlow m_flow;
  std::vector<std::pair<std::size_t, ValueFlow::Call>> m_dynamic_calls; // index of its finding in m_findings
};

} // namespace sandbox::scan::erlang
