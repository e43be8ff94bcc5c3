#include "compiler/security_gate.h"

#include "compiler/engine_state.h"
#include "compiler/sandbox_path.h"
#include "incremental/tree_watch.h"
#include "scan/scanner.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <mutex>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace sandbox::compiler {

namespace {

// The scan of unchanged files is not repeated. A long-running engine scans a
// sandbox before every compile, and reading every source costs more than the
// rest of a no-change compile. The last result per
// sandbox and configuration is kept in memory with what every entry of the
// tree was (type, mode, size and, for a regular file, the SHA-256 of its
// content; a link's target). The scanner reads each file on its own, and each
// finding names its file, so a later scan of the whole tree reads only the
// files whose entry differs and keeps the other files' findings. A changed
// file whose code runs only in the jail (scan::file_runs_in, which a scan of
// named files would not apply) or a configuration not seen before means a
// full scan. The tree is described
// before and after each scan and a result is kept only when both agree.
constexpr std::size_t kScanCacheEntries = 32;
constexpr std::uint64_t kScanCacheMaxBytes = 64ull << 20; // larger trees are scanned every time
constexpr std::size_t kScanCacheMaxEntries = 50'000;

// A length-prefixed field: names may hold any byte but NUL.
std::string field(const std::string& text)
{
  return std::to_string(text.size()) + ":" + text;
}

using TreeFacts = std::map<std::string, std::string>; // relative path -> what the entry is

// The engine's own cache files (rewritten by every incremental compile) are
// not sources the scanner reads.
bool described(const util::TreeEntry& entry)
{
  return !(entry.type == fs::file_type::regular && *entry.relative.begin() == ".sandbox_cache" &&
           scan::language_of(entry.relative) == scan::Language::other);
}

// What one entry is; nullopt when it cannot be read. `total` counts the bytes read.
std::optional<std::string> describe_entry(const fs::path& full, const util::TreeEntry& entry, std::uint64_t& total)
{
  std::string content;
  if (entry.type == fs::file_type::regular) {
    total += entry.size;
    if (total > kScanCacheMaxBytes) {
      return std::nullopt;
    }
    auto data = util::read_file(full, kScanCacheMaxBytes);
    if (!data) {
      return std::nullopt;
    }
    content = util::sha256_hex(*data);
  } else if (entry.type == fs::file_type::symlink) {
    std::error_code ec;
    content = fs::read_symlink(full, ec).string();
    if (ec) {
      return std::nullopt;
    }
  }
  // A directory's size follows its entries, which are described themselves.
  auto size = entry.type == fs::file_type::directory ? 0 : entry.size;
  return fmt::format("{}:{:o}:{}:", static_cast<int>(entry.type), entry.mode, size) + field(content);
}

struct Described {
  TreeFacts facts;
  std::set<std::string> shared; // files with another name: changes through it raise no event here
};

// Adds what is at `relative` (a file, or a directory with all under it) to `out`.
bool describe_into(const fs::path& root, const std::string& relative, Described& out, std::uint64_t& total)
{
  auto list = util::list_tree(relative.empty() ? root : root / relative);
  if (!list) {
    return false;
  }
  for (auto& entry : *list) {
    auto full = (relative.empty() ? root : root / relative) / entry.relative;
    if (!relative.empty()) entry.relative = fs::path(relative) / entry.relative;
    if (!described(entry)) continue;
    auto fact = describe_entry(full, entry, total);
    if (!fact || out.facts.size() >= kScanCacheMaxEntries) {
      return false;
    }
    auto name = entry.relative.string();
    out.facts[name] = std::move(*fact);
    if (entry.type == fs::file_type::regular && entry.links > 1) out.shared.insert(name);
  }
  return true;
}

// `base` patched for the paths that may have changed since it was taken.
bool patch(const fs::path& root, Described& base, const std::set<std::string>& dirty)
{
  std::uint64_t total = 0;
  for (const auto& path : dirty) {
    if (path.empty()) return false;
    std::erase_if(base.facts, [&](const auto& e) { return incremental::path_under(e.first, path); });
    std::erase_if(base.shared, [&](const auto& p) { return incremental::path_under(p, path); });
    struct stat st {};
    if (::lstat((root / path).c_str(), &st) != 0) {
      continue; // gone
    }
    if (S_ISDIR(st.st_mode)) {
      util::TreeEntry dir{path, fs::file_type::directory, static_cast<std::uint64_t>(st.st_size), st.st_mode & 07777u,
                          static_cast<std::uint64_t>(st.st_nlink)};
      base.facts[path] = *describe_entry(root / path, dir, total);
      if (!describe_into(root, path, base, total)) return false;
      continue;
    }
    util::TreeEntry file{path, S_ISREG(st.st_mode) ? fs::file_type::regular
                               : S_ISLNK(st.st_mode) ? fs::file_type::symlink
                                                     : fs::file_type::unknown,
                         static_cast<std::uint64_t>(st.st_size), st.st_mode & 07777u,
                         static_cast<std::uint64_t>(st.st_nlink)};
    if (!described(file)) continue;
    auto fact = describe_entry(root / path, file, total);
    if (!fact) return false;
    base.facts[path] = std::move(*fact);
    if (file.type == fs::file_type::regular && file.links > 1) base.shared.insert(path);
  }
  return base.facts.size() <= kScanCacheMaxEntries;
}

incremental::WatchedViews<Described>& descriptions()
{
  static incremental::WatchedViews<Described> views;
  return views;
}

std::optional<TreeFacts> describe_tree(const fs::path& root)
{
  auto& watcher = incremental::TreeWatcher::instance();
  auto changes = watcher.changes(root, incremental::WatchConsumer::scan);
  auto now = descriptions().take(root, changes);
  if (now) {
    changes->insert(now->shared.begin(), now->shared.end());
    if (!patch(root, *now, *changes)) now.reset();
  } else {
    std::uint64_t total = 0;
    now.emplace();
    if (!describe_into(root, "", *now, total)) now.reset();
  }
  if (!now) {
    return std::nullopt;
  }
  descriptions().keep(root, *now);
  return now->facts;
}

// Bumped when what a scan reports for the same tree and options changes, so
// that results kept by an older engine are not used.
constexpr std::string_view kScanCacheVersion = "4"; // 2: runs_in and scan_scope; 3: value flow; 4: no directory sizes

std::string scan_key(const fs::path& root, const scan::ScanConfig& config, const std::vector<fs::path>& only)
{
  std::string input = fmt::format("v{}:s{}:", kScanCacheVersion, core::to_string(config.scope)) +
                      field(root.string()) + std::to_string(config.scan_depth) + ":";
  for (const auto& m : config.restricted_modules) input += "r" + field(m);
  for (const auto& o : config.allowed_operations) input += "a" + field(o);
  for (const auto& f : only) input += "f" + field(f.string());
  return util::sha256_hex(input);
}

struct ScanCacheEntry {
  std::string key;
  TreeFacts facts;
  scan::ScanResult result;
};

struct ScanCache {
  std::mutex mutex;
  std::deque<ScanCacheEntry> entries; // newest last
};

ScanCache& scan_cache()
{
  static ScanCache cache;
  return cache;
}

// The files whose entries differ between two descriptions of a tree.
std::set<std::string> differing(const TreeFacts& a, const TreeFacts& b)
{
  std::set<std::string> out;
  for (const auto& [path, fact] : a) {
    auto it = b.find(path);
    if (it == b.end() || it->second != fact) out.insert(path);
  }
  for (const auto& [path, fact] : b) {
    if (!a.contains(path)) out.insert(path);
  }
  return out;
}

// The previous whole-tree result with the findings of `changed` replaced by
// a scan of those files alone, or nothing when that would not equal a full scan.
std::optional<std::expected<scan::ScanResult, core::SecurityScanFailed>>
rescan_changed(const fs::path& root, const scan::ScanConfig& config, const ScanCacheEntry& previous,
               const TreeFacts& now, const std::set<std::string>& changed)
{
  std::vector<fs::path> reread;
  for (const auto& path : changed) {
    if (scan::language_of(path) == scan::Language::other) continue;
    if (scan::file_runs_in(path) != scan::RunsIn::host) return std::nullopt;
    auto it = now.find(path);
    if (it != now.end() && it->second.starts_with(fmt::format("{}:", static_cast<int>(fs::file_type::regular)))) {
      reread.push_back(path);
    }
  }
  auto fresh = reread.empty() ? std::expected<scan::ScanResult, core::SecurityScanFailed>(scan::ScanResult{})
                              : scan::scan_code_security(root, config, reread);
  if (!fresh) {
    return fresh;
  }
  auto merged = previous.result;
  auto stale = [&](const scan::Finding& f) { return changed.contains(f.file); };
  std::erase_if(merged.threats, stale);
  std::erase_if(merged.warnings, stale);
  auto by_file = [](const scan::Finding& a, const scan::Finding& b) { return a.file < b.file; };
  for (auto* list : {&merged.threats, &merged.warnings}) {
    auto& add = list == &merged.threats ? fresh->threats : fresh->warnings;
    list->insert(list->end(), add.begin(), add.end());
    std::stable_sort(list->begin(), list->end(), by_file); // a full scan's order: file by file
  }
  merged.files_scanned = 0;
  merged.beams_audited = 0;
  merged.bytes_scanned = 0;
  for (const auto& [path, fact] : now) {
    auto language = scan::language_of(path);
    if (language == scan::Language::other ||
        !fact.starts_with(fmt::format("{}:", static_cast<int>(fs::file_type::regular)))) {
      continue;
    }
    ++(language == scan::Language::beam ? merged.beams_audited : merged.files_scanned);
  }
  merged.bytes_scanned = previous.result.bytes_scanned; // approximate: the last full count
  return merged;
}

// The last entry of each key is also kept in the engine's state directory
// (which no jail binds), signed with the engine key, so that a one-shot
// command (`sandbox incremental`) does not re-read an unchanged tree either.
// What fails to read or verify is ignored; text that is not UTF-8 (a file
// name, a line of code) is stored escaped and read back exactly.
fs::path persisted_path(const std::string& key)
{
  return state_dir() / "scan-cache" / (key + ".json");
}

std::optional<ScanCacheEntry> load_persisted(const std::string& key)
{
  auto engine = engine_key();
  if (!engine) return std::nullopt;
  auto text = util::read_file(persisted_path(key), kScanCacheMaxBytes);
  if (!text) return std::nullopt;
  auto newline = text->find('\n');
  if (newline == std::string::npos) return std::nullopt;
  auto body = std::string_view(*text).substr(newline + 1);
  if (!util::constant_time_equal(text->substr(0, newline), util::hmac_sha256_hex(*engine, key + "\n" + std::string(body)))) {
    return std::nullopt;
  }
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  auto unescaped = parsed.is_discarded() ? std::expected<nlohmann::json, std::string>(std::unexpected("not JSON"))
                                         : util::unescape_strings(parsed);
  if (!unescaped) return std::nullopt;
  const auto& doc = *unescaped;
  if (!doc.is_object() || !doc.contains("facts") || !doc["facts"].is_object() || !doc.contains("result")) {
    return std::nullopt;
  }
  ScanCacheEntry entry;
  entry.key = key;
  for (const auto& [path, fact] : doc["facts"].items()) {
    if (!fact.is_string()) return std::nullopt;
    entry.facts[path] = fact.get<std::string>();
  }
  auto result = scan::result_from_json(doc["result"]);
  if (!result) return std::nullopt;
  entry.result = std::move(*result);
  return entry;
}

void save_persisted(const ScanCacheEntry& entry)
{
  auto engine = engine_key();
  if (!engine) return;
  std::string body;
  try {
    // Names that are not UTF-8 are kept escaped (util::escape_strings).
    body = util::escape_strings(nlohmann::json{{"facts", entry.facts}, {"result", scan::to_json(entry.result)}}).dump();
  } catch (const nlohmann::json::exception&) {
    return;
  }
  auto path = persisted_path(entry.key);
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  fs::permissions(path.parent_path(), fs::perms::owner_all, ec);
  (void)util::write_file_atomic(path, util::hmac_sha256_hex(*engine, entry.key + "\n" + body) + "\n" + body, 0600);
}

std::expected<scan::ScanResult, core::SecurityScanFailed>
scan_with_cache(const fs::path& root, const scan::ScanConfig& config, const std::vector<fs::path>& only)
{
  auto before = describe_tree(root);
  if (!before) {
    return scan::scan_code_security(root, config, only);
  }
  auto key = scan_key(root, config, only);
  std::optional<ScanCacheEntry> previous;
  auto& cache = scan_cache();
  {
    std::lock_guard lock(cache.mutex);
    for (const auto& entry : cache.entries) {
      if (entry.key == key) {
        if (entry.facts == *before) {
          return entry.result;
        }
        previous = entry;
      }
    }
  }
  if (!previous) {
    previous = load_persisted(key);
    if (previous && previous->facts == *before) {
      auto hit = previous->result;
      std::lock_guard lock(cache.mutex);
      cache.entries.push_back(std::move(*previous));
      while (cache.entries.size() > kScanCacheEntries) cache.entries.pop_front();
      return hit;
    }
  }
  std::optional<std::expected<scan::ScanResult, core::SecurityScanFailed>> result;
  if (previous && only.empty()) {
    result = rescan_changed(root, config, *previous, *before, differing(previous->facts, *before));
  }
  if (!result) {
    result = scan::scan_code_security(root, config, only);
  }
  if (*result && describe_tree(root) == before) {
    std::lock_guard lock(cache.mutex);
    std::erase_if(cache.entries, [&](const ScanCacheEntry& e) { return e.key == key; });
    cache.entries.push_back({key, std::move(*before), **result});
    while (cache.entries.size() > kScanCacheEntries) {
      cache.entries.pop_front();
    }
    save_persisted(cache.entries.back());
  }
  return std::move(*result);
}

scan::ScanConfig config_of(const core::CompileOptions& options)
{
  return {options.restricted_modules, options.allowed_operations, kDefaultScanDepth, options.scan_scope};
}

std::expected<std::vector<scan::Finding>, core::Error> gate(scan::ScanResult result)
{
  if (!result.threats.empty()) {
    return std::unexpected(core::SecurityThreatsDetected{scan::to_json(result.threats)});
  }
  return std::move(result.warnings);
}

} // namespace

std::expected<scan::ScanResult, core::Error> scan_code_security(const std::string& path,
                                                                const ScanOptions& options)
{
  if (options.scan_depth < 0) {
    return std::unexpected(core::InvalidOption{"scan_depth", "must be 0 or more"});
  }
  auto sandbox = resolve_sandbox(path);
  if (!sandbox) return std::unexpected(sandbox.error());
  auto result = scan::scan_code_security(
    *sandbox, {options.restricted_modules, options.allowed_operations, options.scan_depth, options.scope});
  if (!result) return std::unexpected(result.error());
  return std::move(*result);
}

std::expected<std::vector<scan::Finding>, core::Error>
security_gate_before(const fs::path& sandbox, const std::vector<fs::path>& source_files,
                     const core::CompileOptions& options)
{
  if (!options.security_scan) return std::vector<scan::Finding>{};
  // Mix compiles the whole project whatever source_files says.
  auto only = options.compiler == core::Backend::mix ? std::vector<fs::path>{} : source_files;
  auto result = scan_with_cache(sandbox, config_of(options), only);
  if (!result) return std::unexpected(result.error());
  return gate(std::move(*result));
}

std::expected<std::vector<scan::Finding>, core::Error>
security_gate_after(const std::vector<fs::path>& beam_files, const core::CompileOptions& options,
                    const std::vector<fs::path>& app_files)
{
  if (!options.security_scan) return std::vector<scan::Finding>{};
  return gate(scan::audit_beam_files(beam_files, config_of(options), app_files));
}

} // namespace sandbox::compiler
