#include "deps/lock_literals.h"

#include <cstddef>
#include <cstdint>
#include <optional>

namespace sandbox::deps::lock_literals {

namespace {

constexpr int max_depth = 64;

std::string_view kind_name(Value::Kind kind)
{
  switch (kind) {
  case Value::Kind::map: return "a map";
  case Value::Kind::tuple: return "a tuple";
  case Value::Kind::list: return "a list";
  case Value::Kind::string: return "a string";
  case Value::Kind::atom: return "an atom";
  case Value::Kind::integer: return "an integer";
  case Value::Kind::boolean: return "a boolean";
  case Value::Kind::nil: return "nil";
  }
  return "a value";
}

bool is_ident_start(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_ident_char(char c)
{
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

bool is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// What the reader found at a position, for messages: printable ASCII as is,
// anything else as a byte value, so hostile bytes never reach a log raw.
std::string describe_char(char c)
{
  auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x21 && byte < 0x7f) {
    return std::string("`") + c + "`";
  }
  static constexpr char digits[] = "0123456789abcdef";
  return std::string("byte 0x") + digits[byte >> 4] + digits[byte & 0xf];
}

class Reader {
public:
  explicit Reader(std::string_view text) : m_text(text) {}

  std::expected<Value, std::string> document()
  {
    skip_blank();
    if (at_end()) {
      // Mix reads an empty lock as no dependencies.
      Value empty;
      empty.kind = Value::Kind::map;
      empty.line = m_line;
      return empty;
    }
    if (!starts_with("%{")) {
      return fail("expected the lock's map `%{`, found " + found());
    }
    auto value = read_value(0);
    if (!value) {
      return value;
    }
    skip_blank();
    if (!at_end()) {
      return fail("expected the end of the lock after its map, found " + found());
    }
    return value;
  }

private:
  [[nodiscard]] bool at_end() const { return m_pos >= m_text.size(); }
  [[nodiscard]] char peek(std::size_t ahead = 0) const
  {
    return m_pos + ahead < m_text.size() ? m_text[m_pos + ahead] : '\0';
  }
  [[nodiscard]] bool starts_with(std::string_view prefix) const
  {
    return m_text.substr(m_pos).starts_with(prefix);
  }

  void advance()
  {
    if (m_text[m_pos] == '\n') {
      ++m_line;
    }
    ++m_pos;
  }

  std::string found() const
  {
    if (at_end()) {
      return "the end of the file";
    }
    return describe_char(peek());
  }

  std::unexpected<std::string> fail(const std::string& message) const
  {
    return std::unexpected("line " + std::to_string(m_line) + ": " + message);
  }

  void skip_blank()
  {
    while (!at_end()) {
      if (is_space(peek())) {
        advance();
      } else if (peek() == '#') {
        while (!at_end() && peek() != '\n') {
          advance();
        }
      } else {
        break;
      }
    }
  }

  std::expected<Value, std::string> read_value(int depth)
  {
    skip_blank();
    if (at_end()) {
      return fail("expected a value, found the end of the file");
    }
    Value value;
    value.line = m_line;
    char c = peek();
    if (c == '%') {
      if (peek(1) != '{') {
        return fail("expected `%{`, found " + found() + " (only literal maps are allowed)");
      }
      return read_container(Value::Kind::map, depth);
    }
    if (c == '{') {
      return read_container(Value::Kind::tuple, depth);
    }
    if (c == '[') {
      return read_container(Value::Kind::list, depth);
    }
    if (c == '"') {
      auto text = read_string();
      if (!text) {
        return std::unexpected(text.error());
      }
      value.kind = Value::Kind::string;
      value.text = std::move(*text);
      return value;
    }
    if (c == ':') {
      advance();
      if (peek() == '"') {
        auto text = read_string();
        if (!text) {
          return std::unexpected(text.error());
        }
        value.text = std::move(*text);
      } else if (is_ident_start(peek())) {
        value.text = read_identifier();
      } else {
        return fail("expected an atom after `:`, found " + found());
      }
      value.kind = Value::Kind::atom;
      return value;
    }
    if ((c >= '0' && c <= '9') || (c == '-' && peek(1) >= '0' && peek(1) <= '9')) {
      return read_integer();
    }
    if (is_ident_start(c)) {
      auto word = read_identifier();
      if (word == "true" || word == "false") {
        value.kind = Value::Kind::boolean;
        value.text = word;
        return value;
      }
      if (word == "nil") {
        value.kind = Value::Kind::nil;
        return value;
      }
      return fail("unexpected `" + word + "`: a lock holds only literals, never code");
    }
    if (c == '~') {
      return fail("unexpected sigil: a lock holds only literals");
    }
    if (c == '<' && peek(1) == '<') {
      return fail("unexpected `<<`: binaries and merge conflicts are not allowed in a lock");
    }
    return fail("unexpected " + found() + ": a lock holds only literals");
  }

  // Elixir identifiers may end in ? or !; atoms may also hold @.
  std::string read_identifier()
  {
    std::size_t start = m_pos;
    while (!at_end() && (is_ident_char(peek()) || peek() == '@')) {
      advance();
    }
    if (peek() == '?' || peek() == '!') {
      advance();
    }
    return std::string(m_text.substr(start, m_pos - start));
  }

  std::expected<Value, std::string> read_integer()
  {
    Value value;
    value.kind = Value::Kind::integer;
    value.line = m_line;
    if (peek() == '-') {
      value.text.push_back('-');
      advance();
    }
    while (!at_end() && ((peek() >= '0' && peek() <= '9') || peek() == '_')) {
      if (peek() != '_') {
        value.text.push_back(peek());
      }
      advance();
    }
    if (peek() == '.' || is_ident_start(peek())) {
      return fail("expected an integer, found " + found() + " in a number");
    }
    return value;
  }

  // A double-quoted string. Interpolation is code, so `#{` is refused, even
  // escaped: no lock Mix writes contains it.
  std::expected<std::string, std::string> read_string()
  {
    int start_line = m_line;
    if (starts_with("\"\"\"")) {
      return fail("heredoc strings are not allowed in a lock");
    }
    advance(); // the opening quote
    std::string out;
    while (true) {
      if (at_end()) {
        return std::unexpected("line " + std::to_string(start_line) + ": unterminated string");
      }
      char c = peek();
      if (c == '"') {
        advance();
        return out;
      }
      if (c == '#' && peek(1) == '{') {
        return fail("string interpolation `#{` is not allowed in a lock");
      }
      if (c != '\\') {
        out.push_back(c);
        advance();
        continue;
      }
      advance();
      if (at_end()) {
        return std::unexpected("line " + std::to_string(start_line) + ": unterminated string");
      }
      char escaped = peek();
      switch (escaped) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 's': out.push_back(' '); break;
      case '0': out.push_back('\0'); break;
      case '#':
        if (peek(1) == '{') {
          return fail("string interpolation `#{` is not allowed in a lock");
        }
        out.push_back('#');
        break;
      case '\n': break; // a line continuation
      default: return fail("unsupported escape `\\" + std::string(1, escaped) + "` in a string");
      }
      advance();
    }
  }

  // A keyword key right here (`hex: ` or `"a-b": `): consumes it and returns
  // its name. A keyword key needs a blank after the colon, which also keeps
  // `::` and `:atom` apart from it.
  std::optional<std::expected<std::string, std::string>> keyword_key()
  {
    std::size_t save_pos = m_pos;
    int save_line = m_line;
    std::string name;
    if (peek() == '"') {
      auto text = read_string();
      if (!text) {
        return text;
      }
      name = std::move(*text);
    } else if (is_ident_start(peek())) {
      name = read_identifier();
    } else {
      return std::nullopt;
    }
    if (peek() == ':' && (is_space(peek(1)) || m_pos + 1 == m_text.size())) {
      advance();
      return name;
    }
    m_pos = save_pos;
    m_line = save_line;
    return std::nullopt;
  }

  std::expected<Value, std::string> read_container(Value::Kind kind, int depth)
  {
    if (depth + 1 > max_depth) {
      return fail("nesting deeper than " + std::to_string(max_depth) + " levels");
    }
    Value value;
    value.kind = kind;
    value.line = m_line;
    if (kind == Value::Kind::map) {
      advance(); // %
    }
    advance(); // { or [
    char close = kind == Value::Kind::list ? ']' : '}';
    // Keyword pairs may only close a list or map: once one appears, the
    // rest must be keywords too (as Elixir requires).
    bool keywords = false;
    while (true) {
      skip_blank();
      if (peek() == close) {
        advance();
        return value;
      }
      if (at_end()) {
        return fail("expected `" + std::string(1, close) + "` to close " +
                    std::string(kind_name(kind)) + " opened on line " + std::to_string(value.line) +
                    ", found the end of the file");
      }
      int item_line = m_line;
      std::optional<std::expected<std::string, std::string>> key;
      if (kind != Value::Kind::tuple) {
        key = keyword_key();
        if (key && !*key) {
          return std::unexpected(key->error());
        }
      }
      if (key) {
        keywords = true;
        Value atom;
        atom.kind = Value::Kind::atom;
        atom.line = item_line;
        atom.text = std::move(**key);
        auto item = read_value(depth + 1);
        if (!item) {
          return item;
        }
        if (kind == Value::Kind::map) {
          value.pairs.emplace_back(std::move(atom), std::move(*item));
        } else {
          Value pair;
          pair.kind = Value::Kind::tuple;
          pair.line = item_line;
          pair.items.push_back(std::move(atom));
          pair.items.push_back(std::move(*item));
          value.items.push_back(std::move(pair));
        }
      } else {
        if (keywords) {
          return fail("expected a keyword (`key: value`) after keywords, found " + found());
        }
        auto item = read_value(depth + 1);
        if (!item) {
          return item;
        }
        if (kind == Value::Kind::map) {
          skip_blank();
          if (!starts_with("=>")) {
            return fail("expected `=>` after a map key, found " + found());
          }
          advance();
          advance();
          auto mapped = read_value(depth + 1);
          if (!mapped) {
            return mapped;
          }
          value.pairs.emplace_back(std::move(*item), std::move(*mapped));
        } else {
          value.items.push_back(std::move(*item));
        }
      }
      skip_blank();
      if (peek() == ',') {
        advance();
        continue;
      }
      if (at_end()) {
        return fail("expected `" + std::string(1, close) + "` to close " +
                    std::string(kind_name(kind)) + " opened on line " + std::to_string(value.line) +
                    ", found the end of the file");
      }
      if (peek() != close) {
        return fail("expected `,` or `" + std::string(1, close) + "` in " +
                    std::string(kind_name(kind)) + ", found " + found());
      }
    }
  }

  std::string_view m_text;
  std::size_t m_pos = 0;
  int m_line = 1;
};

// Turning the literals into the lock's entries.

} // namespace

std::expected<Value, std::string> read_lock_document(std::string_view text)
{
  return Reader(text).document();
}

} // namespace sandbox::deps::lock_literals
