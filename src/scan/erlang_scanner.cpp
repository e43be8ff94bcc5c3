// The Erlang tokenizer and the scan's entry points (scan/erlang_scanner.h);
// the reading of the token stream is scan/erlang_reader.h.

#include "scan/erlang_scanner.h"

#include "scan/erlang_reader.h"

#include <array>
#include <cctype>
#include <string>
#include <vector>

namespace sandbox::scan {

namespace {

using Kind = ErlangToken::Kind;

bool is_name_char(unsigned char c) { return std::isalnum(c) || c == '_' || c == '@'; }

class Tokenizer {
public:
  explicit Tokenizer(std::string_view source) : m_src(source) {}

  std::vector<ErlangToken> run()
  {
    std::vector<ErlangToken> out;
    while (m_pos < m_src.size()) {
      unsigned char c = static_cast<unsigned char>(m_src[m_pos]);
      if (c == '\n') {
        ++m_line;
        m_line_start = ++m_pos;
        continue;
      }
      if (std::isspace(c)) {
        ++m_pos;
        continue;
      }
      if (c == '%') {
        while (m_pos < m_src.size() && m_src[m_pos] != '\n') ++m_pos;
        continue;
      }
      ErlangToken token;
      token.line = m_line;
      token.column = static_cast<std::uint32_t>(m_pos - m_line_start + 1);
      auto start = m_pos;
      if (std::islower(c)) {
        while (m_pos < m_src.size() && is_name_char(static_cast<unsigned char>(m_src[m_pos]))) ++m_pos;
        token.kind = Kind::atom;
        token.value = std::string(m_src.substr(start, m_pos - start));
      } else if (std::isupper(c) || c == '_') {
        while (m_pos < m_src.size() && is_name_char(static_cast<unsigned char>(m_src[m_pos]))) ++m_pos;
        token.kind = Kind::var;
      } else if (c == '\'' || c == '"') {
        token.kind = c == '\'' ? Kind::atom : Kind::string;
        token.value = quoted(static_cast<char>(c));
      } else if (c == '$') {
        ++m_pos;
        if (m_pos < m_src.size() && m_src[m_pos] == '\\') {
          m_pos += 2;
        } else if (m_pos < m_src.size()) {
          ++m_pos;
        }
        while (m_pos < m_src.size() && (static_cast<unsigned char>(m_src[m_pos]) & 0xC0) == 0x80) ++m_pos;
        token.kind = Kind::character;
      } else if (std::isdigit(c)) {
        number();
        token.kind = Kind::number;
      } else if (c == '?') {
        ++m_pos;
        if (m_pos < m_src.size() && m_src[m_pos] == '?') ++m_pos;
        while (m_pos < m_src.size() && is_name_char(static_cast<unsigned char>(m_src[m_pos]))) ++m_pos;
        token.kind = Kind::macro;
        token.value = std::string(m_src.substr(start, m_pos - start));
      } else if (c == '.' && (m_pos + 1 >= m_src.size() || std::isspace(static_cast<unsigned char>(m_src[m_pos + 1])) ||
                              m_src[m_pos + 1] == '%')) {
        ++m_pos;
        token.kind = Kind::end_of_form;
      } else {
        token.kind = Kind::punct;
        m_pos += punct_length();
      }
      if (m_pos > m_src.size()) m_pos = m_src.size();
      token.text = m_src.substr(start, m_pos - start);
      out.push_back(std::move(token));
    }
    return out;
  }

private:
  std::string quoted(char quote)
  {
    std::string value;
    ++m_pos;
    while (m_pos < m_src.size() && m_src[m_pos] != quote) {
      char c = m_src[m_pos];
      if (c == '\\' && m_pos + 1 < m_src.size()) {
        value += c;
        value += m_src[m_pos + 1];
        if (m_src[m_pos + 1] == '\n') {
          ++m_line;
          m_line_start = m_pos + 2;
        }
        m_pos += 2;
        continue;
      }
      if (c == '\n') {
        ++m_line;
        m_line_start = m_pos + 1;
      }
      value += c;
      ++m_pos;
    }
    if (m_pos < m_src.size()) ++m_pos; // closing quote
    return value;
  }

  void number()
  {
    auto digits = [&](bool alnum) {
      while (m_pos < m_src.size()) {
        unsigned char d = static_cast<unsigned char>(m_src[m_pos]);
        if (std::isdigit(d) || d == '_' || (alnum && std::isalpha(d))) {
          ++m_pos;
        } else {
          break;
        }
      }
    };
    digits(false);
    if (m_pos < m_src.size() && m_src[m_pos] == '#') {
      ++m_pos;
      digits(true);
      return;
    }
    if (m_pos + 1 < m_src.size() && m_src[m_pos] == '.' && std::isdigit(static_cast<unsigned char>(m_src[m_pos + 1]))) {
      ++m_pos;
      digits(false);
      if (m_pos < m_src.size() && (m_src[m_pos] == 'e' || m_src[m_pos] == 'E')) {
        ++m_pos;
        if (m_pos < m_src.size() && (m_src[m_pos] == '+' || m_src[m_pos] == '-')) ++m_pos;
        digits(false);
      }
    }
  }

  std::size_t punct_length() const
  {
    static constexpr std::array<std::string_view, 3> three = {"=:=", "=/=", "..."};
    static constexpr std::array<std::string_view, 17> two = {"::", "->", "=>", ":=", "<-", "<=", "||", "<<",
                                                             ">>", "++", "--", "==", "/=", "=<", ">=", "..", "!!"};
    auto rest = m_src.substr(m_pos);
    for (auto op : three) {
      if (rest.starts_with(op)) return 3;
    }
    for (auto op : two) {
      if (rest.starts_with(op)) return 2;
    }
    return 1;
  }

  std::string_view m_src;
  std::size_t m_pos = 0;
  std::size_t m_line_start = 0;
  std::uint32_t m_line = 1;
};

} // namespace

std::vector<ErlangToken> tokenize_erlang(std::string_view source) { return Tokenizer(source).run(); }

void scan_erlang_source(std::string_view file, std::string_view source, Report& report)
{
  erlang::Reader reader(file, source, tokenize_erlang(source), report);
  reader.run();
}

} // namespace sandbox::scan
