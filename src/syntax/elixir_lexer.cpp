#include "syntax/elixir_lexer.h"

#include <algorithm>
#include <array>
#include <limits>

namespace sandbox::syntax {

namespace {

enum class Tok : std::uint8_t {
  identifier, operator_word, alias, atom, keyword, literal, op, dot, open, close, at, comma,
  semicolon, kw_do, kw_end, kw_fn, kw_clause
};

struct Token {
  Tok kind;
  std::uint32_t begin;
  std::uint32_t end;
  bool newline_before;
  int depth; // interpolation depth
};

struct Open {
  bool is_do;
  std::size_t token; // index of the `do` token
};

// Character classes, one table lookup each: the lexer reads every byte.
enum : std::uint8_t { kLower = 1, kUpper = 2, kDigit = 4, kSpace = 8, kOperator = 16 };

constexpr std::array<std::uint8_t, 256> kClasses = [] {
  std::array<std::uint8_t, 256> table{};
  for (int c = 'a'; c <= 'z'; ++c) table[c] = kLower;
  for (int c = 0x80; c < 0x100; ++c) table[c] = kLower;
  table['_'] = kLower;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = kUpper;
  for (int c = '0'; c <= '9'; ++c) table[c] = kDigit;
  for (unsigned char c : std::string_view(" \t\r\f\v")) table[c] = kSpace;
  for (unsigned char c : std::string_view("+-*/<>=!|&^~\\%")) table[c] = kOperator;
  return table;
}();

bool is_ident_start(unsigned char c) { return (kClasses[c] & kLower) != 0; }
bool is_upper(unsigned char c) { return (kClasses[c] & kUpper) != 0; }
bool is_digit(unsigned char c) { return (kClasses[c] & kDigit) != 0; }
bool is_word(unsigned char c) { return (kClasses[c] & (kLower | kUpper | kDigit)) != 0; }
bool is_space(unsigned char c) { return (kClasses[c] & kSpace) != 0; }
bool is_operator_char(unsigned char c) { return (kClasses[c] & kOperator) != 0; }

// Words the lexer treats specially are 2 to 6 letters long.
bool may_be_reserved(std::string_view text)
{
  if (text.size() < 2 || text.size() > 6) return false;
  constexpr std::string_view firsts = "acdefinorw";
  return firsts.find(text.front()) != std::string_view::npos;
}

char closing_of(char open)
{
  switch (open) {
  case '(': return ')';
  case '[': return ']';
  case '{': return '}';
  case '<': return '>';
  default: return open;
  }
}

class Lexer {
public:
  explicit Lexer(std::string_view source) : m_s(source) {}

  std::expected<LexedElixir, std::string> run()
  {
    if (m_s.size() >= std::numeric_limits<std::uint32_t>::max()) return std::unexpected("source too large");
    m_tokens.reserve(m_s.size() / 5 + 16);
    if (!code(0)) return std::unexpected(m_error);
    if (!m_open.empty()) return std::unexpected("a do or fn without its end");
    finish();
    return std::move(m_out);
  }

private:
  [[nodiscard]] unsigned char at(std::size_t i) const { return i < m_s.size() ? static_cast<unsigned char>(m_s[i]) : 0; }
  [[nodiscard]] bool starts(std::size_t i, std::string_view what) const { return m_s.substr(std::min(i, m_s.size())).starts_with(what); }

  bool fail(std::string message)
  {
    if (m_error.empty()) m_error = std::move(message);
    return false;
  }

  void push(Tok kind, std::size_t begin, int depth)
  {
    auto at = static_cast<std::uint32_t>(begin);
    m_tokens.push_back({kind, at, at + 1, m_newline, depth});
    m_newline = false;
  }

  void inert(std::size_t begin, std::size_t end)
  {
    if (end <= begin) return;
    auto b = static_cast<std::uint32_t>(begin);
    auto e = static_cast<std::uint32_t>(end);
    if (!m_out.inert.empty() && m_out.inert.back().end == b) {
      m_out.inert.back().end = e;
    } else {
      m_out.inert.push_back({b, e});
    }
  }

  [[nodiscard]] bool after_dot() const { return !m_tokens.empty() && m_tokens.back().kind == Tok::dot; }

  // Code until the end of input (depth 0) or the `}` closing an interpolation.
  bool code(int depth)
  {
    int braces = 0;
    while (m_i < m_s.size()) {
      auto c = at(m_i);
      auto first = m_tokens.size();
      if (c == '\n') {
        m_newline = true;
        ++m_i;
      } else if (is_space(c)) {
        while (is_space(at(++m_i))) {
        }
      } else if (c == '\\' && (at(m_i + 1) == '\n' || (at(m_i + 1) == '\r' && at(m_i + 2) == '\n'))) {
        m_i += at(m_i + 1) == '\n' ? 2 : 3; // a line continuation
      } else if (c == '#') {
        auto end = m_s.find('\n', m_i);
        if (end == std::string_view::npos) end = m_s.size();
        inert(m_i, end);
        m_i = end;
      } else if (c == '"' || c == '\'') {
        push(Tok::literal, m_i, depth);
        if (!quoted(c, true, depth)) return false;
      } else if (c == '~') {
        if (is_ident_start(at(m_i + 1)) || is_upper(at(m_i + 1))) {
          push(Tok::literal, m_i, depth);
          if (!sigil(depth)) return false;
        } else {
          operator_run(depth);
        }
      } else if (c == '?') {
        // A character literal (identifiers take their own trailing ?).
        auto begin = m_i;
        push(Tok::literal, m_i, depth);
        m_i += at(m_i + 1) == '\\' ? 3 : 2;
        while (m_i < m_s.size() && (at(m_i) & 0xC0) == 0x80) ++m_i; // rest of a UTF-8 character
        inert(begin, std::min(m_i, m_s.size()));
      } else if (c == ':') {
        if (!colon(depth)) return false;
      } else if (is_ident_start(c)) {
        identifier(depth);
      } else if (is_upper(c)) {
        auto begin = m_i;
        while (is_word(at(m_i))) ++m_i;
        keyword_or(Tok::alias, begin, depth);
      } else if (is_digit(c)) {
        number(depth);
      } else if (c == '{' || c == '(' || c == '[') {
        if (c == '{') ++braces;
        push(Tok::open, m_i++, depth);
      } else if (c == '}' || c == ')' || c == ']') {
        if (c == '}') {
          if (depth > 0 && braces == 0) {
            ++m_i;
            return true; // the interpolation's end
          }
          --braces;
        }
        push(Tok::close, m_i++, depth);
      } else if (c == '.') {
        if (at(m_i + 1) == '.') {
          auto begin = m_i;
          while (at(m_i) == '.') ++m_i;
          push(Tok::op, begin, depth);
        } else {
          push(Tok::dot, m_i++, depth);
        }
      } else if (c == '@') {
        push(Tok::at, m_i++, depth);
      } else if (c == ',') {
        push(Tok::comma, m_i++, depth);
      } else if (c == ';') {
        push(Tok::semicolon, m_i++, depth);
      } else if (is_operator_char(c)) {
        operator_run(depth);
      } else {
        return fail("unexpected character");
      }
      if (m_tokens.size() > first) m_tokens[first].end = static_cast<std::uint32_t>(std::min(m_i, m_s.size()));
    }
    if (!m_error.empty()) return false;
    if (depth > 0) return fail("an interpolation without its }");
    return true;
  }

  void operator_run(int depth)
  {
    auto begin = m_i;
    ++m_i;
    while (is_operator_char(at(m_i)) && !(at(m_i) == '~' && (is_ident_start(at(m_i + 1)) || is_upper(at(m_i + 1))))) {
      ++m_i;
    }
    push(Tok::op, begin, depth);
  }

  void number(int depth)
  {
    auto begin = m_i;
    while (is_word(at(m_i))) ++m_i;
    if (at(m_i) == '.' && is_digit(at(m_i + 1))) {
      ++m_i;
      while (is_word(at(m_i))) ++m_i;
      if ((at(m_i - 1) == 'e' || at(m_i - 1) == 'E') && (at(m_i) == '+' || at(m_i) == '-')) {
        ++m_i;
        while (is_word(at(m_i))) ++m_i;
      }
    }
    push(Tok::literal, begin, depth);
  }

  // `name:` (a keyword key) unless followed by another colon (`name::type`).
  bool keyword_follows() const { return at(m_i) == ':' && at(m_i + 1) != ':'; }

  void keyword_or(Tok kind, std::size_t begin, int depth)
  {
    if (keyword_follows()) {
      ++m_i;
      push(Tok::keyword, begin, depth);
    } else {
      push(kind, begin, depth);
    }
  }

  void identifier(int depth)
  {
    auto begin = m_i;
    while (is_word(at(m_i))) ++m_i;
    if (at(m_i) == '?' || at(m_i) == '!') ++m_i;
    auto text = m_s.substr(begin, m_i - begin);
    if (keyword_follows() || after_dot() || !may_be_reserved(text)) {
      return keyword_or(Tok::identifier, begin, depth);
    }
    if (text == "do") {
      m_open.push_back({true, m_tokens.size()});
      push(Tok::kw_do, begin, depth);
    } else if (text == "fn") {
      m_open.push_back({false, m_tokens.size()});
      push(Tok::kw_fn, begin, depth);
    } else if (text == "end") {
      if (m_open.empty()) {
        fail("an end without its do or fn");
        m_i = m_s.size();
        return;
      }
      auto open = m_open.back();
      m_open.pop_back();
      if (m_tokens[open.token].depth != depth) {
        fail("a block across an interpolation");
        m_i = m_s.size();
        return;
      }
      if (open.is_do) m_pairs.push_back({open.token, m_tokens.size()});
      push(Tok::kw_end, begin, depth);
    } else if (text == "else" || text == "rescue" || text == "catch" || text == "after") {
      push(Tok::kw_clause, begin, depth);
    } else if (text == "and" || text == "or" || text == "in" || text == "when" || text == "not") {
      push(Tok::operator_word, begin, depth);
    } else {
      push(Tok::identifier, begin, depth);
    }
  }

  bool colon(int depth)
  {
    auto begin = m_i;
    auto next = at(m_i + 1);
    if (next == ':') {
      m_i += 2;
      push(Tok::op, begin, depth);
    } else if (next == '"' || next == '\'') {
      push(Tok::atom, begin, depth);
      ++m_i;
      if (!quoted(static_cast<char>(next), false, depth)) return false;
      m_out.quoted_atoms.push_back({static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(m_i)});
    } else if (is_ident_start(next) || is_upper(next)) {
      ++m_i;
      while (is_word(at(m_i)) || at(m_i) == '@') ++m_i;
      if (at(m_i) == '?' || at(m_i) == '!') ++m_i;
      push(Tok::atom, begin, depth);
    } else if (is_operator_char(next) || next == '.' || next == '@') {
      ++m_i;
      while (is_operator_char(at(m_i)) || at(m_i) == '.' || at(m_i) == '@') ++m_i;
      push(Tok::atom, begin, depth);
    } else {
      ++m_i;
      push(Tok::op, begin, depth);
    }
    return true;
  }

  // A string or charlist at m_i (its quote), or the content of a quoted atom
  // (m_i after `:`); a triple quote opens a heredoc.
  bool quoted(char quote, bool allow_heredoc, int depth)
  {
    char q[4] = {quote, quote, quote, 0};
    if (allow_heredoc && starts(m_i, std::string_view(q, 3))) {
      auto begin = m_i;
      m_i += 3;
      return heredoc(quote, true, begin, depth);
    }
    auto begin = m_i;
    ++m_i;
    return delimited(quote, true, begin, depth);
  }

  bool sigil(int depth)
  {
    auto begin = m_i;
    ++m_i; // ~
    bool interpolates = !is_upper(at(m_i));
    if (interpolates) {
      ++m_i;
    } else {
      while (is_upper(at(m_i)) || is_digit(at(m_i))) ++m_i;
    }
    auto open = static_cast<char>(at(m_i));
    constexpr std::string_view delimiters = "/|\"'([{<";
    if (open == 0 || delimiters.find(open) == std::string_view::npos) return fail("a sigil with an unknown delimiter");
    bool ok = false;
    if ((open == '"' || open == '\'') && at(m_i + 1) == static_cast<unsigned char>(open) &&
        at(m_i + 2) == static_cast<unsigned char>(open)) {
      m_i += 3;
      ok = heredoc(open, interpolates, begin, depth);
    } else {
      ++m_i;
      ok = delimited(closing_of(open), interpolates, begin, depth);
    }
    if (!ok) return false;
    auto modifiers = m_i;
    while (is_word(at(m_i))) ++m_i;
    inert(modifiers, m_i);
    return true;
  }

  // Content up to an unescaped `close`; m_i is just past the opening delimiter.
  bool delimited(char close, bool interpolates, std::size_t begin, int depth)
  {
    auto segment = begin;
    while (m_i < m_s.size()) {
      auto c = at(m_i);
      if (c == '\\') {
        m_i += 2;
      } else if (c == static_cast<unsigned char>(close)) {
        ++m_i;
        inert(segment, m_i);
        return true;
      } else if (interpolates && c == '#' && at(m_i + 1) == '{') {
        if (!interpolation(segment, depth)) return false;
        segment = m_i;
      } else {
        ++m_i;
      }
    }
    return fail("an unterminated string");
  }

  // A heredoc: ends at a line whose first non-blank characters are the
  // triple quote. m_i is just past the opening triple quote.
  bool heredoc(char quote, bool interpolates, std::size_t begin, int depth)
  {
    char q[4] = {quote, quote, quote, 0};
    auto segment = begin;
    bool line_start = false;
    while (m_i < m_s.size()) {
      auto c = at(m_i);
      if (line_start) {
        auto j = m_i;
        while (is_space(at(j))) ++j;
        if (starts(j, std::string_view(q, 3))) {
          m_i = j + 3;
          inert(segment, m_i);
          return true;
        }
        line_start = false;
        continue;
      }
      if (c == '\n') {
        line_start = true;
        ++m_i;
      } else if (c == '\\') {
        line_start = at(m_i + 1) == '\n'; // an escaped line end still ends the line
        m_i += 2;
      } else if (interpolates && c == '#' && at(m_i + 1) == '{') {
        if (!interpolation(segment, depth)) return false;
        segment = m_i;
      } else {
        ++m_i;
      }
    }
    return fail("an unterminated heredoc");
  }

  bool interpolation(std::size_t segment, int depth)
  {
    if (depth + 1 > kMaxInterpolationDepth) return fail("interpolation nested too deeply");
    inert(segment, m_i + 2);
    m_i += 2;
    return code(depth + 1);
  }

  // The units: each `do ... end` block that is separable, and each
  // statement of a block body (or of the file) that is not a list of
  // `pattern -> body` clauses.
  void finish()
  {
    for (auto [open, close] : m_pairs) {
      if (m_tokens[open].depth == 0 && ends_expression(close)) {
        m_out.units.push_back({m_tokens[open].begin, m_tokens[close].end});
      }
    }
    statements();
    std::sort(m_out.units.begin(), m_out.units.end(), [](const ByteRange& a, const ByteRange& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });
  }

  // Whether a newline between tokens a and b continues the expression.
  static bool continues(const Token& a, const Token& b)
  {
    switch (a.kind) {
    case Tok::op:
    case Tok::operator_word:
    case Tok::comma:
    case Tok::dot:
    case Tok::keyword:
    case Tok::at:
    case Tok::open: return true;
    default: break;
    }
    switch (b.kind) {
    case Tok::op:
    case Tok::operator_word:
    case Tok::dot:
    case Tok::keyword:
    case Tok::comma:
    case Tok::close:
    case Tok::kw_do:
    case Tok::kw_end: return true;
    default: return false;
    }
  }

  // The next token after `k` that is not inside an interpolation (the
  // tokens of an interpolation follow the string that holds them).
  [[nodiscard]] std::size_t next_outside_strings(std::size_t k) const
  {
    ++k;
    while (k < m_tokens.size() && m_tokens[k].depth != 0) ++k;
    return k;
  }

  void statements()
  {
    struct Frame {
      Tok kind;                         // kw_do, kw_fn, open; literal for the file
      bool clauses = false;             // has `->` at its own level
      std::size_t first = SIZE_MAX;     // first token of the open statement
      std::vector<ByteRange> found;
    };
    std::vector<Frame> frames;
    frames.push_back(Frame{Tok::literal, false, SIZE_MAX, {}});
    // A statement reaches to the next token (past a semicolon), so that
    // consecutive statements cut out leave no blank runs between them: the
    // grammar's scanner is slow on long runs of blank lines.
    auto close_statement = [&](Frame& frame, std::size_t last) {
      if (frame.first != SIZE_MAX && last >= frame.first) {
        auto next = next_outside_strings(last);
        if (next < m_tokens.size() && m_tokens[next].kind == Tok::semicolon) next = next_outside_strings(next);
        auto end = next < m_tokens.size() ? m_tokens[next].begin : static_cast<std::uint32_t>(m_s.size());
        frame.found.push_back({m_tokens[frame.first].begin, end});
      }
      frame.first = SIZE_MAX;
    };
    auto pop = [&](std::size_t last) {
      Frame frame = std::move(frames.back());
      frames.pop_back();
      if (frame.kind == Tok::kw_do || frame.kind == Tok::literal) {
        close_statement(frame, last);
        if (!frame.clauses) m_out.units.insert(m_out.units.end(), frame.found.begin(), frame.found.end());
      }
    };
    std::size_t previous = SIZE_MAX;
    for (std::size_t k = 0; k < m_tokens.size(); ++k) {
      const auto& token = m_tokens[k];
      if (token.depth != 0) continue;
      bool closes = (token.kind == Tok::kw_end && frames.size() > 1 &&
                     (frames.back().kind == Tok::kw_do || frames.back().kind == Tok::kw_fn)) ||
                    (token.kind == Tok::close && frames.size() > 1 && frames.back().kind == Tok::open);
      if (closes) pop(previous);
      auto& frame = frames.back();
      bool statement_frame = frame.kind == Tok::kw_do || frame.kind == Tok::literal;
      if (statement_frame) {
        if (token.kind == Tok::semicolon || token.kind == Tok::kw_clause) {
          close_statement(frame, previous);
        } else if (frame.first == SIZE_MAX) {
          frame.first = k;
        } else if (token.newline_before && previous != SIZE_MAX && !continues(m_tokens[previous], token)) {
          close_statement(frame, previous);
          frame.first = k;
        }
        if (token.kind == Tok::op && m_s.substr(token.begin, token.end - token.begin) == "->") frame.clauses = true;
      }
      if (token.kind == Tok::kw_do || token.kind == Tok::kw_fn || token.kind == Tok::open) {
        frames.push_back(Frame{token.kind, false, SIZE_MAX, {}});
      }
      previous = k;
    }
    while (!frames.empty()) pop(previous);
  }

  [[nodiscard]] bool ends_expression(std::size_t end_token) const
  {
    if (end_token + 1 >= m_tokens.size()) return true;
    const auto& next = m_tokens[end_token + 1];
    switch (next.kind) {
    case Tok::close:
    case Tok::kw_end:
    case Tok::kw_clause: return true;
    case Tok::identifier:
    case Tok::alias:
    case Tok::atom:
    case Tok::literal:
    case Tok::at:
    case Tok::kw_fn: return next.newline_before;
    default: return false;
    }
  }

  std::string_view m_s;
  std::size_t m_i = 0;
  bool m_newline = false;
  std::string m_error;
  std::vector<Token> m_tokens;
  std::vector<Open> m_open;
  std::vector<std::pair<std::size_t, std::size_t>> m_pairs;
  LexedElixir m_out;
};

} // namespace

std::expected<LexedElixir, std::string> lex_elixir(std::string_view source)
{
  return Lexer(source).run();
}

bool in_ranges(const std::vector<ByteRange>& ranges, std::uint32_t offset)
{
  auto it = std::upper_bound(ranges.begin(), ranges.end(), offset,
                             [](std::uint32_t value, const ByteRange& range) { return value < range.begin; });
  if (it == ranges.begin()) return false;
  --it;
  return offset >= it->begin && offset < it->end;
}

} // namespace sandbox::syntax
