// `sandbox scan PATH [--restricted-module M]... [--allowed-operation OP]...
// [--scan-depth N] [--scan-scope compiled|all] [--json]`: the security scan
// alone. Exit 0 when there is no threat, 1 with threats or when the scan
// fails, 2 on bad usage.

#include "cli/commands.h"

#include "compiler/security_gate.h"
#include "core/options.h"
#include "util/json.h"

#include <fmt/format.h>

#include <charconv>
#include <iostream>

namespace sandbox::cli {

namespace {

using nlohmann::json;

int scan_usage_error(const Io& io, bool as_json, const std::string& option, const std::string& reason)
{
  if (as_json) {
    io.out() << util::dump_json(json{
                   {"ok", false},
                   {"error", {{"type", "invalid_option"}, {"option", option}, {"reason", reason}}}})
              << "\n";
  }
  io.err() << fmt::format("sandbox scan: invalid option {}: {}\n", option, reason);
  return kExitUsage;
}

void print_findings(const Io& io, const char* title, const std::vector<scan::Finding>& findings)
{
  if (findings.empty()) return;
  io.out() << fmt::format("{} ({}):\n", title, findings.size());
  for (const auto& f : findings) {
    io.out() << fmt::format("  {}:{}:{}: [{}] {}: {}\n", f.file, f.line, f.column, scan::to_string(f.severity),
                             f.operation, f.message);
    if (!f.matched_text.empty()) io.out() << fmt::format("      {}\n", f.matched_text);
  }
}

} // namespace

void Commands::register_scan(CLI::App& app)
{
  auto* command = app.add_subcommand("scan", "Security scan of a sandbox (sources and shipped BEAMs)");
  command->add_option("path", m_paths, "Sandbox directory")->required()->expected(1);
  command->add_option("--restricted-module", m_flags.restricted_modules, "Restricted module (repeatable)");
  command->add_option("--allowed-operation", m_flags.allowed_operations, "Allowed operation (repeatable)");
  command->add_option("--scan-depth", m_scan_depth,
                      fmt::format("Levels of alias/import/apply indirection followed (default {})",
                                  compiler::kDefaultScanDepth));
  command->add_option("--scan-scope", m_flags.scan_scope,
                      "compiled (default: only code a host may load can be a threat) or all (every file)");
  command->add_flag("--json", m_json, "Print one JSON object");
  command->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      json object = json::object();
      if (!m_flags.restricted_modules.empty()) object["restricted_modules"] = m_flags.restricted_modules;
      if (!m_flags.allowed_operations.empty()) object["allowed_operations"] = m_flags.allowed_operations;
      if (m_flags.scan_scope) object["scan_scope"] = *m_flags.scan_scope;
      auto parsed = core::parse_compile_options(object);
      if (!parsed) return scan_usage_error(io, m_json, parsed.error().option, parsed.error().reason);
      compiler::ScanOptions options;
      options.restricted_modules = parsed->restricted_modules;
      options.allowed_operations = parsed->allowed_operations;
      options.scope = parsed->scan_scope;
      if (m_scan_depth) {
        int depth = -1;
        const auto& text = *m_scan_depth;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), depth);
        if (ec != std::errc{} || end != text.data() + text.size() || depth < 0 || depth > 100) {
          return scan_usage_error(io, m_json, "--scan-depth", "expected an integer from 0 to 100");
        }
        options.scan_depth = depth;
      }
      auto result = compiler::scan_code_security(m_paths.front(), options);
      if (!result) {
        if (m_json) {
          io.out() << util::dump_json(json{{"ok", false}, {"error", core::to_json(result.error())}}) << "\n";
        } else {
          io.err() << "sandbox scan: " << core::describe(result.error()) << "\n";
        }
        return kExitFailed;
      }
      bool clean = result->threats.empty();
      if (m_json) {
        auto out = scan::to_json(*result);
        out["ok"] = clean;
        if (!clean) out["error"] = {{"type", "security_threats_detected"}, {"threats", out["threats"]}};
        io.out() << util::dump_json(out) << "\n";
      } else {
        print_findings(io, "Security threats", result->threats);
        print_findings(io, "Security warnings", result->warnings);
        io.out() << fmt::format("{} files scanned ({} bytes), {} BEAM files audited, scan depth {}: {}\n",
                                 result->files_scanned, result->bytes_scanned, result->beams_audited,
                                 result->scan_depth, clean ? "no threat" : "THREATS DETECTED");
      }
      return clean ? kExitOk : kExitFailed;
    };
  });
}

} // namespace sandbox::cli
