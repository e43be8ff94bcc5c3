// Path mapping and ANSI stripping for the diagnostics parsers: the parts that
// do not depend on a compiler's message format.

#include "backends/diagnostics.h"
#include "util/fs.h"

#include <optional>

namespace sandbox::backends {

namespace {

namespace fs = std::filesystem;

fs::path normalized(const fs::path& path)
{
  fs::path n = path.lexically_normal();
  if (!n.has_filename() && n.has_relative_path())
    n = n.parent_path();
  return n;
}

} // namespace

std::string strip_ansi(std::string_view text)
{
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  // Steps over the byte at i when it lies in [low, high].
  auto skip = [&](char low, char high) {
    bool hit = i < text.size() && text[i] >= low && text[i] <= high;
    i += hit ? 1 : 0;
    return hit;
  };
  auto skip_all = [&](char low, char high) {
    while (skip(low, high)) {
    }
  };
  while (i < text.size()) {
    if (text[i] != '\x1b') {
      out.push_back(text[i++]);
      continue;
    }
    ++i;
    if (skip('[', '[')) {
      skip_all(0x30, 0x3F); // parameters
      skip_all(0x20, 0x2F); // intermediates
      skip(0x40, 0x7E);     // final byte
    } else {
      skip(0x40, 0x5F); // two-byte escape
    }
  }
  return out;
}

std::string sandbox_relative_path(std::string_view printed, const PathContext& paths)
{
  if (printed.empty() || printed == "nofile")
    return std::string(printed);
  fs::path path{std::string(printed)};
  auto relative_to = [](const fs::path& root, const fs::path& p) -> std::optional<std::string> {
    if (root.empty() || !util::is_within(root, p))
      return std::nullopt;
    return p.lexically_relative(root).string();
  };
  if (path.is_relative()) {
    if (paths.sandbox_root.empty())
      return normalized(path).string();
    fs::path root = normalized(paths.sandbox_root);
    fs::path joined = normalized(root / path);
    return relative_to(root, joined).value_or(joined.string());
  }
  fs::path absolute = normalized(path);
  if (auto r = relative_to(normalized(paths.sandbox_root), absolute))
    return *r;
  for (const fs::path& alias : paths.aliases) {
    if (auto r = relative_to(normalized(alias), absolute))
      return *r;
  }
  return absolute.string();
}

} // namespace sandbox::backends
