#include "backends/diagnostics.h"

#include <algorithm>
#include <array>
#include <optional>
#include <unordered_set>
#include <utility>

namespace sandbox::backends {

namespace {

namespace fs = std::filesystem;
using core::Diagnostic;
using core::Severity;

// A location is only looked for in the first PATH_MAX bytes of a line, which
// also bounds the work done on hostile megabyte-long lines.
constexpr std::size_t kMaxPathBytes = 4096;
// A warning whose location never comes must not swallow the rest of the output.
constexpr int kMaxBlockLines = 64;
// How far below an exception its stack trace is looked for.
constexpr int kMaxTraceLines = 64;

constexpr std::string_view kBoxBar = "\u2502";          // │
constexpr std::string_view kNumberedBar = " \u2502";    // "  3 │ code"
constexpr std::string_view kBoxCorner = "\u2514\u2500"; // └─
constexpr std::string_view kCompilationErrorIn = "== Compilation error in file ";

constexpr auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
constexpr auto is_blank = [](char c) { return c == ' ' || c == '\t'; };

std::string_view trim_left(std::string_view s)
{
  auto first = std::ranges::find_if_not(s, is_blank);
  return s.substr(static_cast<std::size_t>(first - s.begin()));
}

std::string_view trim_right(std::string_view s)
{
  std::size_t n = s.size();
  while (n > 0 && (is_blank(s[n - 1]) || s[n - 1] == '\r'))
    --n;
  return s.substr(0, n);
}

constexpr auto trim = [](std::string_view s) { return trim_right(trim_left(s)); };
constexpr auto leading_spaces = [](std::string_view s) { return s.size() - trim_left(s).size(); };

// Cuts at a byte limit without splitting a UTF-8 sequence.
void append_capped(std::string& out, std::string_view text)
{
  if (out.size() >= kMaxMessageBytes)
    return;
  std::size_t room = kMaxMessageBytes - out.size();
  if (text.size() > room) {
    std::size_t cut = room;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
      --cut;
    text = text.substr(0, cut);
  }
  out.append(text);
}

// Parses 1 to 9 digits at s[pos]; 9 digits cannot overflow an int.
std::optional<int> parse_number(std::string_view s, std::size_t& pos)
{
  std::size_t start = pos;
  int value = 0;
  while (pos < s.size() && is_digit(s[pos]) && pos - start < 9)
    value = value * 10 + (s[pos++] - '0');
  if (pos == start || (pos < s.size() && is_digit(s[pos])))
    return std::nullopt;
  return value;
}

bool ends_with_any(std::string_view s, std::initializer_list<std::string_view> suffixes)
{
  return std::ranges::any_of(suffixes, [&](std::string_view x) { return s.ends_with(x); });
}

// Stricter than the "file:line" test: used where no line number vouches for
// the text being a path ("file: message", a bare "  file" location).
bool looks_like_source_file(std::string_view path)
{
  if (path.empty() || path.size() > kMaxPathBytes)
    return false;
  if (std::ranges::any_of(path, is_blank))
    return false;
  if (path == "nofile")
    return true;
  return ends_with_any(path, {".ex", ".exs", ".erl", ".hrl", ".yrl", ".xrl", ".eex", ".heex",
                              ".leex", ".escript", ".app.src", ".core", ".S", ".asn1", ".mib"});
}

struct Location {
  std::string_view file;
  int line = 0;
  int column = 0;
  std::string_view rest; // text after "file:line[:col]: "
};

enum class NoLine { reject, accept };

// Matches "line[:col]" at text[pos], then the end, ":" and the end, or ": rest".
bool match_line_column(std::string_view text, std::size_t pos, Location& loc)
{
  auto line = parse_number(text, pos);
  if (!line)
    return false;
  loc.line = *line;
  if (pos + 1 < text.size() && text[pos] == ':' && is_digit(text[pos + 1])) {
    auto column = parse_number(text, ++pos);
    if (!column)
      return false;
    loc.column = *column;
  }
  std::string_view tail = text.substr(pos);
  loc.rest = tail.starts_with(": ") ? tail.substr(2) : std::string_view{};
  return tail.empty() || tail == ":" || tail.starts_with(": ");
}

// Recognises "file:line", "file:line:col", either followed by ": rest" or ":"
// or the end, and, with NoLine::accept, "file: rest" and a bare "file". The
// file is the shortest prefix that fits, so "c:/x.ex:3:" style colons inside a
// path are skipped over; it must contain '.' or '/' ("12:43:26 [info]" is not
// a location) and no whitespace (prose before a location is not a path, at
// the price of not recognising paths that contain spaces).
std::optional<Location> parse_location(std::string_view text, NoLine no_line)
{
  if (text.empty() || is_blank(text[0]))
    return std::nullopt;
  bool path_like = false;
  std::size_t limit = std::min(text.size(), kMaxPathBytes + 1);
  for (std::size_t i = 0; i < limit; ++i) {
    char c = text[i];
    if (is_blank(c))
      break; // prose, not a path ("invalid syntax found on f.ex:1:2:")
    if (c != ':') {
      path_like = path_like || c == '.' || c == '/';
      continue;
    }
    Location loc{text.substr(0, i), 0, 0, {}};
    if ((path_like || loc.file == "nofile") && match_line_column(text, i + 1, loc))
      return loc;
  }
  if (no_line == NoLine::reject)
    return std::nullopt;
  std::size_t colon = text.substr(0, limit).find(": ");
  if (colon != std::string_view::npos && looks_like_source_file(text.substr(0, colon)))
    return Location{text.substr(0, colon), 0, 0, text.substr(colon + 2)};
  if (looks_like_source_file(trim_right(text)))
    return Location{trim_right(text), 0, 0, {}};
  return std::nullopt;
}

struct ErlcLine {
  Location location;
  Severity severity = Severity::error;
  std::string_view message;
};

// "file:line:col: msg", "file:line: msg" or "file: msg"; "Warning: " marks a warning.
std::optional<ErlcLine> parse_erlc_line(std::string_view line)
{
  auto loc = parse_location(trim_right(line), NoLine::accept);
  if (!loc || (loc->line == 0 && loc->rest.empty()))
    return std::nullopt;
  ErlcLine out{*loc, Severity::error, trim(loc->rest)};
  for (std::string_view prefix : {"Warning: ", "warning: "}) {
    if (out.message.starts_with(prefix)) {
      out.message.remove_prefix(prefix.size());
      out.severity = Severity::warning;
    }
  }
  return out;
}

// Stack entries of applications print as "(elixir 1.14.0) lib/kernel.ex:3: ...".
std::string_view skip_app_prefix(std::string_view text)
{
  if (!text.starts_with('('))
    return text;
  std::size_t close = text.substr(0, 128).find(") ");
  return close == std::string_view::npos ? text : text.substr(close + 2);
}

struct Header {
  Severity severity;
  std::string_view text;
};

// "warning: msg", "error: msg" and the 1.17+ "hint: msg", at any indentation.
std::optional<Header> parse_block_header(std::string_view line)
{
  static constexpr std::array<std::pair<std::string_view, Severity>, 3> kinds{{
      {"warning:", Severity::warning},
      {"error:", Severity::error},
      {"hint:", Severity::info},
  }};
  std::string_view t = trim_left(line);
  for (const auto& [prefix, severity] : kinds) {
    if (!t.starts_with(prefix))
      continue;
    std::string_view rest = t.substr(prefix.size());
    if (rest.empty())
      return Header{severity, rest};
    if (rest[0] == ' ')
      return Header{severity, trim_right(rest.substr(1))};
  }
  return std::nullopt;
}

struct Exception {
  std::string_view name;
  std::string_view rest;
};

// "** (Name) rest" where Name is an Elixir module name.
std::optional<Exception> parse_exception_header(std::string_view line)
{
  std::string_view t = trim_left(line);
  if (!t.starts_with("** ("))
    return std::nullopt;
  t.remove_prefix(4);
  std::size_t close = t.substr(0, 128).find(')');
  if (close == 0 || close == std::string_view::npos)
    return std::nullopt;
  std::string_view name = t.substr(0, close);
  auto name_char = [](char c) {
    return is_digit(c) || c == '.' || c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  };
  if (!std::ranges::all_of(name, name_char))
    return std::nullopt;
  std::string_view rest = t.substr(close + 1);
  return Exception{name, trim(rest)};
}

// Exceptions whose message is itself a compiler diagnostic, so the exception
// name adds nothing to it.
bool is_compiler_exception(std::string_view name)
{
  return name == "CompileError" || name == "SyntaxError" || name == "TokenMissingError" ||
         name == "MismatchedDelimiterError" || name == "Kernel.TypespecError";
}

// Parts of a boxed (Elixir >= 1.16) diagnostic between the message and the
// "└─" location: "│ ...", "  3 │ code", and "..." for skipped lines.
bool is_box_line(std::string_view t)
{
  if (t.starts_with(kBoxBar) || t == "...")
    return true;
  std::size_t i = 0;
  while (i < t.size() && is_digit(t[i]))
    ++i;
  return i > 0 && t.substr(i).starts_with(kNumberedBar);
}

Diagnostic make_diagnostic(Severity severity, std::string_view file, int line, int column,
                           std::string_view message, const PathContext& paths)
{
  Diagnostic d{sandbox_relative_path(file, paths), line, column, severity, {}};
  append_capped(d.message, message);
  return d;
}

// Reads Elixir's output a line at a time. Each of these can stay open across
// lines: a warning/error block waiting for its locations, an exception waiting
// for its stack trace, a 1.16 exception header waiting for its boxed error.
class ElixirParser {
public:
  explicit ElixirParser(const PathContext& paths) : m_paths(paths) {}

  [[nodiscard]] bool full() const { return m_out.size() >= kMaxDiagnostics; }

  void feed(std::string_view line)
  {
    if (full() || (m_block && feed_block(line)) || (m_trace && feed_trace(line)))
      return;
    if (m_await && !trim(line).empty() && !parse_block_header(line))
      flush_await();
    fresh(line);
  }

  std::vector<Diagnostic> finish()
  {
    if (m_block)
      close_block();
    if (m_trace)
      finish_trace();
    if (m_await)
      flush_await();
    return std::move(m_out);
  }

  std::vector<Diagnostic> take() { return std::move(m_out); }

private:
  struct Block {
    Severity severity = Severity::warning;
    std::size_t indent = 0;
    std::string message;
    std::size_t pending_blank_lines = 0;
    int lines = 0;
    int locations = 0;
    bool boxed = false;
    std::optional<Diagnostic> fallback; // the 1.16 exception header the block explains
  };

  struct Trace {
    std::string message;
    std::optional<Diagnostic> first_frame;
    std::optional<Diagnostic> header_file_frame;
    bool saw_frame = false;
    int lines = 0;
  };

  void push(Diagnostic d)
  {
    if (full())
      return;
    if (d.severity == Severity::error)
      m_error_files.insert(d.file);
    m_out.push_back(std::move(d));
  }

  void emit(Severity severity, std::string_view file, int line, int column,
            std::string_view message)
  {
    push(make_diagnostic(severity, file, line, column, message, m_paths));
  }

  void fresh(std::string_view line)
  {
    std::string_view t = trim(line);
    if (t.empty())
      return;
    if (auto exception = parse_exception_header(line))
      return on_exception(*exception);
    if (t.starts_with(kCompilationErrorIn) && t.ends_with(" ==")) {
      std::string_view file = t.substr(kCompilationErrorIn.size());
      file.remove_suffix(std::min<std::size_t>(3, file.size()));
      m_header_file = sandbox_relative_path(file, m_paths);
      return;
    }
    if (auto header = parse_block_header(line))
      return start_block(*header, leading_spaces(line));
    if (t.starts_with("Compilation failed due to warnings"))
      return emit(Severity::error, "", 0, 0, t);
    if (auto erlc = parse_erlc_line(line)) { // mix compiling src/*.erl
      const Location& loc = erlc->location;
      return emit(erlc->severity, loc.file, loc.line, loc.column, erlc->message);
    }
    if (std::size_t at = line.find("** (Mix) "); at != std::string_view::npos)
      return emit(Severity::error, "", 0, 0, trim(line.substr(at + 9)));
  }

  void on_exception(const Exception& e)
  {
    auto named = [&](std::string_view text) {
      std::string out = "** (" + std::string(e.name) + ")";
      return text.empty() ? out : out + " " + std::string(text);
    };
    if (e.name == "Mix")
      return emit(Severity::error, "", 0, 0, e.rest);
    if (auto loc = parse_location(e.rest, NoLine::accept)) {
      std::string_view text = trim(loc->rest);
      std::string message = is_compiler_exception(e.name) ? std::string(text) : named(text);
      Diagnostic d =
          make_diagnostic(Severity::error, loc->file, loc->line, loc->column, message, m_paths);
      m_header_file.clear();
      // Elixir >= 1.15 ends a failed file with this summary of errors already shown.
      if (!(e.name == "CompileError" && text.ends_with("(errors have been logged)") &&
            m_error_files.contains(d.file)))
        push(std::move(d));
      return;
    }
    if (std::size_t on = e.rest.rfind(" on "); e.rest.ends_with(':') && on != std::string::npos) {
      if (auto loc = parse_location(e.rest.substr(on + 4), NoLine::reject)) {
        std::string message = named(e.rest.substr(0, e.rest.size() - 1));
        m_await =
            make_diagnostic(Severity::error, loc->file, loc->line, loc->column, message, m_paths);
        return;
      }
    }
    m_trace.emplace();
    append_capped(m_trace->message, named(e.rest));
  }

  void flush_await()
  {
    push(std::move(*m_await));
    m_await.reset();
  }

  void start_block(const Header& header, std::size_t indent)
  {
    m_block.emplace();
    m_block->severity = header.severity;
    m_block->indent = indent;
    append_capped(m_block->message, header.text);
    if (m_await && header.severity == Severity::error)
      m_block->fallback = std::exchange(m_await, std::nullopt);
    else if (m_await)
      flush_await();
  }

  void close_block()
  {
    if (m_block->locations == 0) {
      Diagnostic d = m_block->fallback.value_or(Diagnostic{});
      d.severity = m_block->severity;
      d.message = std::move(m_block->message);
      push(std::move(d));
    }
    m_block.reset();
  }

  void emit_block_at(std::string_view location_text)
  {
    if (auto loc = parse_location(skip_app_prefix(trim(location_text)), NoLine::accept)) {
      emit(m_block->severity, loc->file, loc->line, loc->column, m_block->message);
      ++m_block->locations;
    }
  }

  // Elixir <= 1.15 prints locations under an unindented header as "  file:line".
  [[nodiscard]] bool is_legacy_location(std::string_view line) const
  {
    return m_block->indent == 0 && !m_block->boxed && line.starts_with("  ") && line.size() > 2 &&
           !is_blank(line[2]) &&
           parse_location(skip_app_prefix(trim(line)), NoLine::accept).has_value();
  }

  // Lines that start something new, so they end an open warning block.
  static bool is_terminator(std::string_view line)
  {
    return trim_left(line).starts_with("** (") || parse_block_header(line) ||
           line.starts_with("== Compilation error") || line.starts_with("==> ") ||
           line.starts_with("Generated ") ||
           line.starts_with("Compilation failed due to warnings") ||
           (line.starts_with("Compiling ") && line.size() > 10 && is_digit(line[10])) ||
           parse_location(trim_right(line), NoLine::reject).has_value();
  }

  // Returns false when the line belongs to what comes next, not to the block.
  bool feed_block(std::string_view line)
  {
    std::string_view t = trim(line);
    bool ours = true;
    if (t.starts_with(kBoxCorner)) {
      emit_block_at(t.substr(kBoxCorner.size()));
      m_block->boxed = true;
    } else if (is_legacy_location(line)) {
      emit_block_at(line);
    } else if (m_block->locations > 0) {
      ours = false;
    } else if (is_box_line(t)) {
      m_block->boxed = true;
    } else if (m_block->boxed || is_terminator(line) || ++m_block->lines > kMaxBlockLines) {
      ours = false;
    } else if (t.empty()) {
      m_block->pending_blank_lines += m_block->message.empty() ? 0 : 1;
    } else {
      if (!m_block->message.empty())
        append_capped(m_block->message, std::string(m_block->pending_blank_lines + 1, '\n'));
      m_block->pending_blank_lines = 0;
      std::size_t strip = std::min(m_block->indent, leading_spaces(line));
      append_capped(m_block->message, trim_right(line.substr(strip)));
    }
    if (!ours)
      close_block();
    return ours;
  }

  bool feed_trace(std::string_view line)
  {
    std::string_view t = trim(line);
    if (t.empty())
      return true;
    bool frame_indent = leading_spaces(line) >= 4;
    if (is_terminator(line) || (!frame_indent && m_trace->saw_frame) ||
        ++m_trace->lines > kMaxTraceLines) {
      finish_trace();
      return false;
    }
    if (!frame_indent)
      return true;            // the exception message continues
    if (t.starts_with('(')) { // "(elixir 1.14.0) lib/...": not the user's code
      m_trace->saw_frame = true;
    } else if (auto loc = parse_location(t, NoLine::reject)) {
      m_trace->saw_frame = true;
      if (m_trace->first_frame && m_trace->header_file_frame)
        return true;
      Diagnostic frame = make_diagnostic(Severity::error, loc->file, loc->line, 0, "", m_paths);
      if (!m_trace->header_file_frame && frame.file == m_header_file)
        m_trace->header_file_frame = frame;
      if (!m_trace->first_frame)
        m_trace->first_frame = std::move(frame);
    }
    return true;
  }

  void finish_trace()
  {
    Diagnostic d = m_trace->header_file_frame.value_or(
        m_trace->first_frame.value_or(Diagnostic{m_header_file, 0, 0, Severity::error, {}}));
    d.severity = Severity::error;
    d.message = std::move(m_trace->message);
    push(std::move(d));
    m_trace.reset();
    m_header_file.clear();
  }

  const PathContext& m_paths;
  std::vector<Diagnostic> m_out;
  std::unordered_set<std::string> m_error_files;
  std::string m_header_file; // from mix's "== Compilation error in file F =="
  // A "warning:"/"error:" header and its message, waiting for locations.
  std::optional<Block> m_block;
  // An exception without a location, waiting for its stack trace.
  std::optional<Trace> m_trace;
  // A 1.16 "** (SyntaxError) invalid syntax found on F:L:C:", waiting for its boxed "error:".
  std::optional<Diagnostic> m_await;
};

// Calls f on each line of the ANSI-stripped text, without the line break.
template <typename F> void for_each_line(std::string_view text, F&& f)
{
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (line.ends_with('\r'))
      line.remove_suffix(1);
    if (!f(line))
      return;
    if (nl == std::string_view::npos)
      return;
    text.remove_prefix(nl + 1);
  }
}

} // namespace

std::vector<core::Diagnostic> parse_elixir_output(std::string_view output, const PathContext& paths)
{
  ElixirParser parser(paths);
  try {
    std::string text = strip_ansi(output);
    for_each_line(text, [&](std::string_view line) {
      parser.feed(line);
      return !parser.full();
    });
    return parser.finish();
  } catch (...) {
    // Only allocation failure can land here; what was parsed is still useful.
    return parser.take();
  }
}

std::vector<core::Diagnostic> parse_erlc_output(std::string_view output, const PathContext& paths)
{
  std::vector<core::Diagnostic> out;
  try {
    std::string text = strip_ansi(output);
    for_each_line(text, [&](std::string_view line) {
      // "%    3| f() ->" lines show the source under a message.
      auto erlc = line.starts_with('%') ? std::nullopt : parse_erlc_line(line);
      if (erlc) {
        const Location& loc = erlc->location;
        out.push_back(
            make_diagnostic(erlc->severity, loc.file, loc.line, loc.column, erlc->message, paths));
      }
      return out.size() < kMaxDiagnostics;
    });
  } catch (...) {
    // Only allocation failure can land here; what was parsed is still useful.
  }
  return out;
}

} // namespace sandbox::backends
