#include "deps/hex_metadata.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace sandbox::deps {

std::string printable(std::string_view text, std::size_t max)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : text.substr(0, max)) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(digits[byte >> 4]);
      out.push_back(digits[byte & 0xf]);
    }
  }
  if (text.size() > max) {
    out += "...";
  }
  return out;
}


namespace {

// ---------------------------------------------------------------------------
// metadata.config: Erlang terms, each ending with `.`, as hex_core writes them
// with io_lib_pretty. The reader knows literals only (tuples, lists, maps,
// binaries, strings, atoms, numbers); anything else is an error.

struct Term {
  enum class Kind { tuple, list, map, binary, string, atom, integer, floating };
  Kind kind = Kind::atom;
  std::string text;        // bytes of binaries and strings, atom names, number digits
  std::vector<Term> items; // tuple and list elements; map keys and values alternating
};

constexpr int max_term_depth = 64;

class TermReader {
public:
  explicit TermReader(std::string_view text) : m_text(text) {}

  // The next top-level term, or nothing at the end of the file.
  std::expected<std::optional<Term>, std::string> next()
  {
    skip_blank();
    if (at_end()) {
      return std::optional<Term>();
    }
    auto term = value(0);
    if (!term) {
      return std::unexpected(term.error());
    }
    skip_blank();
    if (peek() != '.') {
      return fail("expected `.` after a term");
    }
    advance();
    if (!at_end() && !is_blank(peek()) && peek() != '%') {
      return fail("expected a blank after `.`");
    }
    return std::optional<Term>(std::move(*term));
  }

private:
  static bool is_blank(char c)
  {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_atom_char(char c)
  {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '@';
  }

  [[nodiscard]] bool at_end() const { return m_pos >= m_text.size(); }
  [[nodiscard]] char peek(std::size_t ahead = 0) const
  {
    return m_pos + ahead < m_text.size() ? m_text[m_pos + ahead] : '\0';
  }
  void advance()
  {
    if (m_text[m_pos] == '\n') {
      ++m_line;
    }
    ++m_pos;
  }

  std::unexpected<std::string> fail(const std::string& message) const
  {
    std::string where = at_end() ? "the end" : printable(std::string(1, peek()));
    return std::unexpected("line " + std::to_string(m_line) + ": " + message + ", found " + where);
  }

  void skip_blank()
  {
    while (!at_end()) {
      if (is_blank(peek())) {
        advance();
      } else if (peek() == '%') {
        while (!at_end() && peek() != '\n') {
          advance();
        }
      } else {
        break;
      }
    }
  }

  std::expected<Term, std::string> value(int depth)
  {
    if (depth >= max_term_depth) {
      return fail("terms nested deeper than " + std::to_string(max_term_depth) + " levels");
    }
    skip_blank();
    char c = peek();
    if (c == '{') {
      return sequence(Term::Kind::tuple, '}', depth);
    }
    if (c == '[') {
      return sequence(Term::Kind::list, ']', depth);
    }
    if (c == '#' && peek(1) == '{') {
      advance();
      return sequence(Term::Kind::map, '}', depth);
    }
    if (c == '<' && peek(1) == '<') {
      return binary();
    }
    if (c == '"') {
      Term term;
      term.kind = Term::Kind::string;
      auto text = quoted('"', true);
      if (!text) {
        return std::unexpected(text.error());
      }
      term.text = std::move(*text);
      return term;
    }
    if (c == '\'') {
      Term term;
      auto text = quoted('\'', true);
      if (!text) {
        return std::unexpected(text.error());
      }
      term.text = std::move(*text);
      return term;
    }
    if (c >= 'a' && c <= 'z') {
      Term term;
      while (!at_end() && is_atom_char(peek())) {
        term.text.push_back(peek());
        advance();
      }
      return term;
    }
    if (is_digit(c) || (c == '-' && is_digit(peek(1)))) {
      return number();
    }
    return fail("expected a literal term");
  }

  std::expected<Term, std::string> sequence(Term::Kind kind, char close, int depth)
  {
    advance(); // the opening bracket
    Term term;
    term.kind = kind;
    skip_blank();
    if (peek() == close) {
      advance();
      return term;
    }
    while (true) {
      auto item = value(depth + 1);
      if (!item) {
        return item;
      }
      term.items.push_back(std::move(*item));
      skip_blank();
      if (kind == Term::Kind::map) {
        if (peek() != '=' || peek(1) != '>') {
          return fail("expected `=>` in a map");
        }
        advance();
        advance();
        auto mapped = value(depth + 1);
        if (!mapped) {
          return mapped;
        }
        term.items.push_back(std::move(*mapped));
        skip_blank();
      }
      if (peek() == ',') {
        advance();
        continue;
      }
      if (peek() == close) {
        advance();
        return term;
      }
      return fail(std::string("expected `,` or `") + close + "`");
    }
  }

  std::expected<Term, std::string> number()
  {
    Term term;
    term.kind = Term::Kind::integer;
    if (peek() == '-') {
      term.text.push_back('-');
      advance();
    }
    auto digits = [&](auto accept) {
      std::size_t count = 0;
      while (!at_end() && (accept(peek()) || (peek() == '_' && count > 0))) {
        if (peek() != '_') {
          term.text.push_back(peek());
          ++count;
        }
        advance();
      }
      return count;
    };
    digits(is_digit);
    if (peek() == '#') {
      // Base#digits, e.g. 16#ff.
      term.text.push_back('#');
      advance();
      if (digits([](char ch) {
            return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
          }) == 0) {
        return fail("expected digits after `#`");
      }
      return term;
    }
    if (peek() == '.' && is_digit(peek(1))) {
      term.kind = Term::Kind::floating;
      term.text.push_back('.');
      advance();
      digits(is_digit);
      if (peek() == 'e' || peek() == 'E') {
        term.text.push_back('e');
        advance();
        if (peek() == '+' || peek() == '-') {
          term.text.push_back(peek());
          advance();
        }
        if (digits(is_digit) == 0) {
          return fail("expected an exponent");
        }
      }
    }
    return term;
  }

  static void append_utf8(std::string& out, std::uint32_t cp)
  {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  static int hex_value(char c)
  {
    if (is_digit(c)) {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  }

  // A quoted string or atom with Erlang's escapes. Bytes of the file pass
  // through as they are (the fields the engine reads are ASCII); an escaped
  // code point is one byte when it fits and `utf8` is false, else UTF-8.
  std::expected<std::string, std::string> quoted(char quote, bool utf8)
  {
    int start_line = m_line;
    advance();
    std::string out;
    while (true) {
      if (at_end()) {
        return std::unexpected("line " + std::to_string(start_line) + ": unterminated quoted text");
      }
      char c = peek();
      advance();
      if (c == quote) {
        return out;
      }
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (at_end()) {
        continue; // reported as unterminated above
      }
      char e = peek();
      advance();
      std::uint32_t cp = 0;
      switch (e) {
      case 'b': cp = '\b'; break;
      case 'd': cp = 0x7f; break;
      case 'e': cp = 0x1b; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 's': cp = ' '; break;
      case 't': cp = '\t'; break;
      case 'v': cp = '\v'; break;
      case '^': {
        if (at_end()) {
          continue;
        }
        cp = static_cast<unsigned char>(peek()) & 0x1f;
        advance();
        break;
      }
      case 'x': {
        if (peek() == '{') {
          advance();
          int count = 0;
          while (hex_value(peek()) >= 0 && count < 8) {
            cp = cp * 16 + static_cast<std::uint32_t>(hex_value(peek()));
            advance();
            ++count;
          }
          if (count == 0 || peek() != '}' || cp > 0x10ffff) {
            return fail("bad `\\x{...}` escape");
          }
          advance();
        } else {
          for (int i = 0; i < 2; ++i) {
            if (hex_value(peek()) < 0) {
              return fail("bad `\\x` escape");
            }
            cp = cp * 16 + static_cast<std::uint32_t>(hex_value(peek()));
            advance();
          }
        }
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          cp = static_cast<std::uint32_t>(e - '0');
          for (int i = 0; i < 2 && peek() >= '0' && peek() <= '7'; ++i) {
            cp = cp * 8 + static_cast<std::uint32_t>(peek() - '0');
            advance();
          }
        } else {
          cp = static_cast<unsigned char>(e); // \\ \" \' and any other character
        }
      }
      if (cp < 0x80 || (!utf8 && cp < 0x100)) {
        out.push_back(static_cast<char>(cp));
      } else {
        append_utf8(out, cp);
      }
    }
  }

  // <<"text">>, <<"text"/utf8>>, <<"a" "b">>, <<1,2,3>>, <<>>.
  std::expected<Term, std::string> binary()
  {
    advance();
    advance();
    Term term;
    term.kind = Term::Kind::binary;
    skip_blank();
    if (peek() == '>' && peek(1) == '>') {
      advance();
      advance();
      return term;
    }
    while (true) {
      skip_blank();
      if (peek() == '"') {
        // Adjacent strings are one; a /utf8 after them changes how escapes
        // encode, so the strings are read once to find it, then again.
        std::size_t start = m_pos;
        int start_line = m_line;
        auto strings = [&](bool utf8) -> std::expected<std::string, std::string> {
          std::string text;
          while (peek() == '"') {
            auto part = quoted('"', utf8);
            if (!part) {
              return part;
            }
            text += *part;
            skip_blank();
          }
          return text;
        };
        auto text = strings(false);
        if (!text) {
          return std::unexpected(text.error());
        }
        if (peek() == '/') {
          advance();
          std::string type;
          while (!at_end() && is_atom_char(peek())) {
            type.push_back(peek());
            advance();
          }
          if (type != "utf8") {
            return fail("unsupported binary segment type `" + printable(type) + "`");
          }
          std::size_t after = m_pos;
          int after_line = m_line;
          m_pos = start;
          m_line = start_line;
          text = strings(true);
          if (!text) {
            return std::unexpected(text.error());
          }
          m_pos = after;
          m_line = after_line;
        }
        term.text += *text;
      } else if (is_digit(peek())) {
        int byte = 0;
        int count = 0;
        while (is_digit(peek()) && count < 4) {
          byte = byte * 10 + (peek() - '0');
          advance();
          ++count;
        }
        if (byte > 255 || is_digit(peek())) {
          return fail("a binary byte must be 0..255");
        }
        term.text.push_back(static_cast<char>(byte));
      } else {
        return fail("expected a string or a byte in a binary");
      }
      skip_blank();
      if (peek() == ',') {
        advance();
        continue;
      }
      if (peek() == '>' && peek(1) == '>') {
        advance();
        advance();
        return term;
      }
      return fail("expected `,` or `>>` in a binary");
    }
  }

  std::string_view m_text;
  std::size_t m_pos = 0;
  int m_line = 1;
};

bool is_text(const Term& term)
{
  return term.kind == Term::Kind::binary || term.kind == Term::Kind::string;
}

} // namespace

std::expected<PackageMetadata, std::string> read_metadata(std::string_view text)
{
  TermReader reader(text);
  std::map<std::string, Term> fields;
  while (true) {
    auto term = reader.next();
    if (!term) {
      return std::unexpected(term.error());
    }
    if (!*term) {
      break;
    }
    auto& pair = **term;
    if (pair.kind != Term::Kind::tuple || pair.items.size() != 2 || !is_text(pair.items[0])) {
      return std::unexpected("a top-level term is not a {<<\"key\">>, value} pair");
    }
    const auto& key = pair.items[0].text;
    if (key == "name" || key == "version" || key == "app" || key == "build_tools") {
      if (fields.contains(key)) {
        return std::unexpected("the key " + key + " appears twice");
      }
      fields.emplace(key, std::move(pair.items[1]));
    }
  }
  PackageMetadata out;
  for (auto [key, target] : {std::pair<const char*, std::string*>{"name", &out.name},
                             {"version", &out.version},
                             {"app", &out.app}}) {
    auto it = fields.find(key);
    if (it == fields.end()) {
      continue;
    }
    if (!is_text(it->second)) {
      return std::unexpected(std::string("the ") + key + " is not a binary");
    }
    *target = it->second.text;
  }
  if (out.name.empty()) {
    return std::unexpected("no name");
  }
  if (out.version.empty()) {
    return std::unexpected("no version");
  }
  if (out.app.empty()) {
    out.app = out.name;
  }
  if (auto it = fields.find("build_tools"); it != fields.end()) {
    if (it->second.kind != Term::Kind::list) {
      return std::unexpected("the build_tools are not a list");
    }
    for (const auto& tool : it->second.items) {
      if (!is_text(tool)) {
        return std::unexpected("a build tool is not a binary");
      }
      out.build_tools.push_back(tool.text);
    }
  }
  return out;
}


} // namespace sandbox::deps
