#include "scan/scanner.h"

#include "scan/beam_audit.h"
#include "scan/elixir_scanner.h"
#include "scan/erlang_scanner.h"
#include "util/fs.h"

#include <fmt/format.h>

namespace sandbox::scan {

Language language_of(const fs::path& path)
{
  auto ext = path.extension();
  if (ext == ".ex" || ext == ".exs") return Language::elixir;
  if (ext == ".erl" || ext == ".hrl") return Language::erlang;
  if (ext == ".beam") return Language::beam;
  return Language::other;
}

std::expected<void, core::SecurityScanFailed> scan_source(const std::string& relative_name,
                                                          std::string source, Report& report)
{
  auto language = language_of(relative_name);
  report.result().files_scanned += 1;
  report.result().bytes_scanned += source.size();
  if (language == Language::elixir) {
    auto scanned = scan_elixir_source(relative_name, std::move(source), report);
    if (!scanned) {
      return std::unexpected(core::SecurityScanFailed{
        fmt::format("{}: could not be parsed: {}", relative_name, scanned.error())});
    }
  } else if (language == Language::erlang) {
    scan_erlang_source(relative_name, source, report);
  }
  return {};
}

namespace {

bool skipped_directory(const fs::path& relative)
{
  for (const auto& part : relative) {
    if (part == ".git" || part == ".sandbox_cache") return true;
  }
  return false;
}

} // namespace

RunsIn file_runs_in(const fs::path& relative)
{
  std::vector<std::string> parts;
  for (const auto& part : relative) parts.push_back(part.string());
  // apps/<app>/ (an umbrella) and deps/<dep>/ hold projects of their own.
  std::size_t at = 0;
  while (parts.size() - at >= 3 && (parts[at] == "apps" || parts[at] == "deps")) at += 2;
  if (at >= parts.size()) return RunsIn::jail;
  auto ext = relative.extension();
  const auto& top = parts[at];
  bool at_root = parts.size() - at == 1;
  // What mix, elixirc and erlc compile without source_files: lib/**/*.ex,
  // src/**/*.erl and *.erl at the root, with the headers they include.
  if (ext == ".ex") return top == "lib" && !at_root ? RunsIn::host : RunsIn::jail;
  if (ext == ".erl") return at_root || top == "src" ? RunsIn::host : RunsIn::jail;
  if (ext == ".hrl") return at_root || top == "src" || top == "include" ? RunsIn::host : RunsIn::jail;
  return RunsIn::jail; // .exs: mix.exs, config, tests, scripts
}

std::expected<ScanResult, core::SecurityScanFailed>
scan_code_security(const fs::path& root, const ScanConfig& config, const std::vector<fs::path>& only,
                   const ScanLimits& limits)
{
  // With source files named, only they are read: compile_file's sandbox is
  // the file's directory, which may be any large directory.
  std::expected<std::vector<util::TreeEntry>, std::string> entries;
  if (only.empty()) {
    entries = util::list_tree(root);
  } else {
    entries = std::vector<util::TreeEntry>{};
    for (const auto& relative : only) {
      std::error_code ec;
      auto status = fs::symlink_status(root / relative, ec);
      if (ec) return std::unexpected(core::SecurityScanFailed{relative.string() + ": " + ec.message()});
      auto size = status.type() == fs::file_type::regular ? fs::file_size(root / relative, ec) : 0;
      entries->push_back({relative, status.type(), ec ? 0 : size, 0});
    }
  }
  if (!entries) {
    return std::unexpected(core::SecurityScanFailed{"cannot list the sandbox: " + entries.error()});
  }
  Report report(config);
  std::uint64_t files = 0;
  std::uint64_t total = 0;
  for (const auto& entry : *entries) {
    if (entry.type != fs::file_type::regular || skipped_directory(entry.relative)) continue;
    auto language = language_of(entry.relative);
    if (language == Language::other) continue;
    auto name = entry.relative.string();
    if (++files > limits.max_files) {
      return std::unexpected(core::SecurityScanFailed{
        fmt::format("the sandbox has more than {} files to scan", limits.max_files)});
    }
    if (language == Language::beam) {
      audit_beam_file(root / entry.relative, name, report);
      continue;
    }
    if (entry.size > limits.max_file_bytes) {
      return std::unexpected(core::SecurityScanFailed{fmt::format(
        "{} is {} bytes, over the scan limit of {} bytes", name, entry.size, limits.max_file_bytes)});
    }
    total += entry.size;
    if (total > limits.max_total_bytes) {
      return std::unexpected(core::SecurityScanFailed{
        fmt::format("the sources exceed the scan limit of {} bytes", limits.max_total_bytes)});
    }
    auto source = util::read_file(root / entry.relative, limits.max_file_bytes);
    if (!source) {
      return std::unexpected(core::SecurityScanFailed{fmt::format("{}: {}", name, source.error())});
    }
    // Files named by source_files are what the backend compiles.
    report.set_file_runs_in(only.empty() ? file_runs_in(entry.relative) : RunsIn::host);
    auto scanned = scan_source(name, std::move(*source), report);
    report.set_file_runs_in(RunsIn::host);
    if (!scanned) {
      return std::unexpected(scanned.error());
    }
  }
  return std::move(report.result());
}

ScanResult audit_beam_files(const std::vector<fs::path>& beams, const ScanConfig& config,
                            const std::vector<fs::path>& app_files)
{
  Report report(config);
  for (const auto& beam : beams) {
    audit_beam_file(beam, beam.filename().string(), report, BeamOrigin::compiled);
  }
  for (const auto& app : app_files) {
    audit_app_file(app, app.filename().string(), report);
  }
  return std::move(report.result());
}

} // namespace sandbox::scan
