#include "cli/commands.h"

#include "beam/beam.h"
#include "cli/batch.h"
#include "cli/daemon_command.h"
#include "compiler/packages.h"
#include "cli/service_commands.h"
#include "compiler/incremental_compile.h"
#include "compiler/in_process_compiler.h"
#include "compiler/isolated_compiler.h"
#include "compiler/report.h"
#include "core/options.h"
#include "util/json.h"
#include "backends/toolchain.h"
#include "jail/probe.h"
#include "fleet/fleet.h"
#include "service/doctor.h"
#include "worker/worker.h"

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <iterator>
#include <unistd.h>

namespace sandbox::cli {

namespace {

using nlohmann::json;

std::string flag_name(std::string_view option)
{
  std::string flag = "--";
  for (char c : option) {
    flag += c == '_' ? '-' : c;
  }
  return flag;
}

int usage_error(const Io& io, bool as_json, const std::string& option, const std::string& reason)
{
  if (as_json) {
    io.out() << util::dump_json(json{
                   {"ok", false},
                   {"error", {{"type", "invalid_option"}, {"option", option}, {"reason", reason}}}})
              << "\n";
  }
  io.err() << fmt::format("sandbox: invalid option {} ({}): {}\n", flag_name(option), option, reason);
  return kExitUsage;
}

void print_human_result(const Io& io, const compiler::CompileResult& result, const json& as_json)
{
  auto report = compiler::compilation_report(as_json);
  if (!report) {
    io.out() << util::dump_json(as_json, 2) << "\n";
    return;
  }
  io.out() << compiler::format_report(*report);
  if (result) {
    for (const auto& beam : result->beam_files) {
      io.out() << "  " << beam.string() << "\n";
    }
    if (result->app_file) {
      io.out() << "  " << result->app_file->string() << "\n";
    }
    for (const auto& dep : result->dependencies) {
      io.out() << fmt::format("dependency {} {} ({}{}): {}\n", dep.name, dep.version, dep.source,
                               dep.cached ? ", from the package store" : "", dep.ebin.string());
    }
    io.out() << "temp dir: " << result->temp_dir.string()
              << "  (remove with: sandbox cleanup " << result->temp_dir.string() << ")\n";
    io.out() << "isolation: " << result->isolation.mode << "\n";
    if (result->toolchain) {
      io.out() << fmt::format("toolchain: Elixir {} on Erlang/OTP {} ({}{})\n", result->toolchain->elixir_version,
                              result->toolchain->otp_version, result->toolchain->system ? "the system's, " : "",
                              result->toolchain->prefix.string());
    }
    io.out() << fmt::format("resources: peak memory {:.1f} MiB, cpu {} ms, wall {} ms\n",
                             static_cast<double>(result->resource_usage.peak_memory_bytes) / (1 << 20),
                             result->resource_usage.cpu_time_ms, result->resource_usage.wall_time_ms);
    for (const auto& item : result->unenforced_options) {
      io.out() << "not enforced: " << item.option << ": " << item.reason << "\n";
    }
  } else if (std::holds_alternative<core::CompilationFailed>(result.error())) {
    const auto& failed = std::get<core::CompilationFailed>(result.error());
    if (failed.diagnostics.empty() && !failed.output.empty()) {
      io.out() << failed.output;
    }
  }
}

// An action with nothing to report but success: {"ok": true} or the error.
template <typename Done>
int finish_action(const Io& io, const Done& done, bool as_json, std::string_view command)
{
  if (as_json) {
    io.out() << util::dump_json(done ? json{{"ok", true}} : json{{"ok", false}, {"error", core::to_json(done.error())}})
              << "\n";
  } else if (!done) {
    io.err() << "sandbox " << command << ": " << core::describe(done.error()) << "\n";
  }
  return done ? kExitOk : kExitFailed;
}

int finish_compile(const Io& io, const compiler::CompileResult& result, bool as_json)
{
  auto out = compiler::to_json(result);
  if (as_json) {
    io.out() << util::dump_json(out) << "\n";
  } else {
    print_human_result(io, result, out);
  }
  if (result) {
    return kExitOk;
  }
  if (std::holds_alternative<core::InvalidOption>(result.error())) {
    const auto& invalid = std::get<core::InvalidOption>(result.error());
    io.err() << fmt::format("sandbox: invalid option {} ({}): {}\n", flag_name(invalid.option),
                             invalid.option, invalid.reason);
    return kExitUsage;
  }
  return kExitFailed;
}

} // namespace

void CompileFlags::add_to(CLI::App& command)
{
  command.add_option("--compiler", compiler, "Backend: mix, elixirc, erlc, in_process");
  command.add_flag("--in-process", in_process, "Same as --compiler in_process");
  command.add_option("--timeout", timeout, "Wall-clock limit in milliseconds (default 30000)");
  command.add_option("--memory-limit", memory_limit, "Memory limit: bytes or 256M, 1G (default 256M)");
  command.add_option("--cpu-limit", cpu_limit, "CPU limit in percent (default 80)");
  command.add_option("--max-processes", max_processes, "Process limit (default 100)");
  command.add_option("--temp-dir", temp_dir, "Directory in which the job's temp dir is created");
  command.add_option("--output-limit", output_limit, "Cap on what the compiler may print (default 1M)");
  command.add_option("--isolation", isolation, "jail (default) or process_group (weaker, opt-in)");
  command.add_flag("--no-validate-beams", no_validate_beams, "Skip BEAM validation");
  command.add_option("--env", env, "KEY=VALUE for the compile's environment (repeatable)");
  command.add_flag("--incremental", incremental, "Incremental compilation");
  command.add_flag("--force-recompile", force_recompile, "Full recompilation, bypassing the cache");
  command.add_flag("--no-cache", no_cache, "Disable the compile cache");
  command.add_flag("--skip-cache", skip_cache, "Skip cache lookup but still update the cache");
  command.add_flag("--no-dependency-analysis", no_dependency_analysis, "No scope expansion");
  command.add_flag("--no-security-scan", no_security_scan, "Skip the security scan");
  command.add_option("--restricted-module", restricted_modules, "Restricted module (repeatable)");
  command.add_option("--allowed-operation", allowed_operations, "Allowed operation (repeatable)");
  command.add_option("--scan-scope", scan_scope,
                     "compiled (default: only code a host may load can be a threat) or all (every file)");
  command.add_option("--source-file", source_files, "Source file to compile (repeatable)");
  command.add_option("--worker-reuse", worker_reuse,
                     "in_process: confined (default: a warm worker serves the next job when the "
                     "submission is confined and it passes the hygiene check) or never");
  command.add_option("--package-mirror", package_mirror,
                     "Hex packages from DIR (tarballs/NAME-VERSION.tar) or an http(s) URL "
                     "(default $SANDBOX_PACKAGE_MIRROR)");
  command.add_option("--toolchain", toolchain,
                     "Elixir installation prefix DIR, or a name from toolchains.conf "
                     "(default: the system's; see `sandbox toolchains`)");
}

std::optional<json> CompileFlags::to_options(std::string& error) const
{
  json options = json::object();
  auto put = [&](const char* key, const std::optional<std::string>& value) {
    if (value) {
      options[key] = *value;
    }
  };
  put("compiler", compiler);
  put("timeout", timeout);
  put("memory_limit", memory_limit);
  put("cpu_limit", cpu_limit);
  put("max_processes", max_processes);
  put("temp_dir", temp_dir);
  put("output_limit", output_limit);
  put("isolation", isolation);
  put("scan_scope", scan_scope);
  put("worker_reuse", worker_reuse);
  if (package_mirror) {
    // A directory given on the command line is relative to where the user is.
    auto text = *package_mirror;
    if (!text.empty() && text.find("://") == std::string::npos && text.front() != '/') {
      std::error_code ec;
      text = std::filesystem::absolute(text, ec).lexically_normal().string();
    }
    options["package_mirror"] = text;
  }
  if (toolchain) {
    // A prefix given on the command line is relative to where the user is; a
    // word without '/' is a registered name.
    auto text = *toolchain;
    if (text.find('/') != std::string::npos && text.front() != '/') {
      std::error_code ec;
      text = std::filesystem::absolute(text, ec).lexically_normal().string();
    }
    while (text.size() > 1 && text.back() == '/') {
      text.pop_back();
    }
    options["toolchain"] = text;
  }
  if (in_process) options["in_process"] = true;
  if (no_validate_beams) options["validate_beams"] = false;
  if (incremental) options["incremental"] = true;
  if (force_recompile) options["force_recompile"] = true;
  if (no_cache) options["cache_enabled"] = false;
  if (skip_cache) options["skip_cache"] = true;
  if (no_dependency_analysis) options["dependency_analysis"] = false;
  if (no_security_scan) options["security_scan"] = false;
  if (!restricted_modules.empty()) options["restricted_modules"] = restricted_modules;
  if (!allowed_operations.empty()) options["allowed_operations"] = allowed_operations;
  if (!source_files.empty()) options["source_files"] = source_files;
  if (!env.empty()) {
    json vars = json::object();
    for (const auto& item : env) {
      auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0) {
        error = fmt::format("\"{}\" is not KEY=VALUE", item);
        return std::nullopt;
      }
      vars[item.substr(0, eq)] = item.substr(eq + 1);
    }
    options["env"] = vars;
  }
  return options;
}

void Commands::register_all(CLI::App& app)
{
  auto add_compile = [this, &app](const char* name, const char* help, const char* what,
                                  bool single_file) {
    auto* command = app.add_subcommand(name, help);
    command->add_option(what, m_paths, what)->required()->expected(1, single_file ? 1 : -1);
    m_flags.add_to(*command);
    if (!single_file) {
      command->add_option("--jobs", m_batch_jobs, "Sandboxes compiled at once when several are given (default 2)");
    }
    command->add_flag("--json", m_json, "Print one JSON object");
    command->callback([this, single_file] {
      m_selected = [this, single_file] {
      const Io& io = m_io;
        std::string error;
        auto object = m_flags.to_options(error);
        if (!object) {
          return usage_error(io, m_json, "env", error);
        }
        auto options = core::parse_compile_options(*object);
        if (!options) {
          return usage_error(io, m_json, options.error().option, options.error().reason);
        }
        if (!single_file && m_paths.size() > 1) {
          return run_batch(m_paths, *options,
                           {.jobs = m_batch_jobs, .json = m_json, .terminal = io.out_terminal},
                           io.out());
        }
        return finish_compile(io, single_file ? compiler::compile_file(m_paths.front(), *options)
                                          : compiler::compile_sandbox(m_paths.front(), *options),
                              m_json);
      };
    });
  };
  add_compile("compile", "Compile a sandbox directory", "path", false);
  add_compile("compile-file", "Compile one .ex or .erl file", "file", true);

  register_scan(app);

  auto* validate = app.add_subcommand("validate", "Validate BEAM files");
  validate->add_option("beam", m_paths, "BEAM files")->required();
  validate->add_flag("--json", m_json, "Print one JSON object");
  validate->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      json files = json::array();
      bool all_ok = true;
      for (const auto& path : m_paths) {
        auto checked = beam::validate_beam_file(path);
        if (checked) {
          files.push_back({{"file", path}, {"ok", true}, {"module", checked->module},
                           {"exports", checked->exports.size()}, {"imports", checked->imports.size()}});
        } else {
          all_ok = false;
          files.push_back({{"file", path}, {"ok", false}, {"reason", checked.error().reason}});
        }
      }
      if (m_json) {
        json out = {{"ok", all_ok}, {"files", files}};
        if (!all_ok) {
          for (const auto& f : files) {
            if (!f["ok"].get<bool>()) {
              out["error"] = {{"type", "beam_validation_failed"}, {"file", f["file"]}, {"reason", f["reason"]}};
              break;
            }
          }
        }
        io.out() << util::dump_json(out) << "\n";
      } else {
        for (const auto& f : files) {
          if (f["ok"].get<bool>()) {
            io.out() << fmt::format("ok       {} ({})\n", f["file"].get<std::string>(), f["module"].get<std::string>());
          } else {
            io.out() << fmt::format("INVALID  {}: {}\n", f["file"].get<std::string>(), f["reason"].get<std::string>());
          }
        }
      }
      return all_ok ? kExitOk : kExitFailed;
    };
  });

  auto* report = app.add_subcommand("report", "Print the report of a compile result read as JSON on stdin");
  report->add_flag("--json", m_json, "Print one JSON object");
  report->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      std::string input((std::istreambuf_iterator<char>(io.in())), std::istreambuf_iterator<char>());
      auto parsed = json::parse(input, nullptr, false);
      if (parsed.is_discarded()) {
        io.err() << "sandbox report: stdin is not JSON\n";
        return kExitUsage;
      }
      auto built = compiler::compilation_report(parsed);
      if (!built) {
        io.err() << "sandbox report: " << built.error() << "\n";
        return kExitUsage;
      }
      io.out() << (m_json ? util::dump_json(*built) + "\n" : compiler::format_report(*built));
      return (*built)["status"] == "success" ? kExitOk : kExitFailed;
    };
  });

  auto* toolchains = app.add_subcommand(
    "toolchains", "The Elixir toolchains a compile may choose (--toolchain), with their versions");
  toolchains->add_flag("--json", m_json, "Print one JSON object");
  toolchains->callback([this] {
    m_selected = [this] {
      auto listing = service::toolchains_json();
      bool ok = std::ranges::all_of(listing["toolchains"], [](const json& t) { return t.value("ok", false); }) &&
                !listing.contains("config_error");
      const Io& io = m_io;
      if (m_json) {
        io.out() << util::dump_json(listing) << "\n";
      } else {
        io.out() << service::toolchains_text(listing);
      }
      return ok ? kExitOk : kExitFailed;
    };
  });

  auto* doctor = app.add_subcommand("doctor", "Which isolation layers work here, and why not");
  doctor->add_flag("--json", m_json, "Print one JSON object");
  doctor->add_option("--cluster", m_cluster, "Also check a fleet's store: redis://HOST:PORT/DB or redis+unix:///PATH");
  doctor->add_option("--cluster-namespace", m_cluster_namespace, "The fleet's namespace (default sandbox)");
  doctor->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      std::optional<nlohmann::json> cluster;
      if (!m_cluster.empty()) {
        auto url = fleet::parse_redis_url(m_cluster);
        if (!url) {
          io.err() << "sandbox doctor: --cluster: " << url.error() << "\n";
          return kExitUsage;
        }
        cluster = fleet::probe_store(*url, m_cluster_namespace);
      }
      bool cluster_ok = !cluster || (*cluster)["state"] == "ok";
      if (m_json) {
        auto doctor_report = service::doctor_json();
        if (cluster) {
          doctor_report["cluster"] = *cluster;
        }
        io.out() << util::dump_json(doctor_report) << "\n";
        return doctor_report["ok"].get<bool>() && cluster_ok ? kExitOk : kExitFailed;
      }
      auto probes = jail::probe_isolation();
      bool supported = jail::jail_supported();
      const auto& tools = backends::system_toolchain();
      {
        for (const auto& p : probes) {
          io.out() << fmt::format("{:<4} {:<16} {}\n", p.works ? "ok" : "NO", p.name, p.detail);
        }
        io.out() << fmt::format("toolchain: {}\n",
                                tools ? fmt::format("{} (Elixir {}, OTP {}; elixir, elixirc, mix, erl, erlc)",
                                                    (*tools)->elixir.parent_path().string(),
                                                    (*tools)->elixir_version, (*tools)->otp_version)
                                      : tools.error());
        io.out() << "toolchains:\n" << service::toolchains_text(service::toolchains_json());
        io.out() << (supported ? "jail: supported; compiles run in the jail by default\n"
                                : "jail: NOT supported here; compiles refuse to run unless --isolation process_group is given\n");
      }
      auto ebin = worker::locate_worker_ebin();
      io.out() << fmt::format("worker: {} ({}{})\n", (ebin.path / "sandbox_worker.beam").string(), ebin.found_by,
                               ebin.present ? "" : ", MISSING: the in_process compiler cannot start");
      auto watch = compiler::watch_support_json();
      io.out() << fmt::format("watch: {}{}\n", watch["works"].get<bool>() ? "" : "NO: ",
                              watch["detail"].get<std::string>());
      if (cluster) {
        const auto& c = *cluster;
        io.out() << (cluster_ok ? fmt::format("cluster: ok (redis {} at {}; {} nodes take jobs, {} jobs in the queue)\n",
                                              c.value("redis_version", "?"), c.value("url", ""),
                                              c.value("nodes_taking_jobs", 0), c.value("jobs_queued", 0))
                                : fmt::format("cluster: degraded ({}): nodes compile locally until it answers\n",
                                              c.value("error", "")));
      }
      return supported && tools && ebin.present && cluster_ok ? kExitOk : kExitFailed;
    };
  });

  auto* compile_string = app.add_subcommand(
    "compile-string", "Compile Elixir source read on stdin through a warm worker (in_process)");
  compile_string->add_option("--filename", m_filename, "The file name diagnostics report (NAME.ex)")
    ->required();
  compile_string->add_option("--out", m_out, "Directory for the BEAM files")->required();
  compile_string->add_option("--timeout", m_flags.timeout, "Wall-clock deadline in ms");
  compile_string->add_option("--toolchain", m_flags.toolchain,
                             "Elixir installation prefix DIR, or a name from toolchains.conf");
  compile_string->add_option("--worker-reuse", m_flags.worker_reuse,
                             "confined (default) or never: whether the worker may serve another job");
  compile_string->add_flag("--json", m_json, "Print one JSON object");
  compile_string->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      core::CompileOptions limits;
      std::string flag_error;
      auto given = m_flags.to_options(flag_error);
      if (!given) {
        return usage_error(io, m_json, "options", flag_error);
      }
      if (!given->empty()) {
        auto parsed = core::parse_compile_options(*given);
        if (!parsed) {
          return usage_error(io, m_json, parsed.error().option, parsed.error().reason);
        }
        limits = *parsed;
      }
      std::string code(std::istreambuf_iterator<char>(io.in()), {});
      auto result = compiler::compile_string(code, m_filename, std::filesystem::path(m_out), limits);
      if (m_json) {
        io.out() << util::dump_json(compiler::to_json(result)) << "\n";
      } else if (result) {
        for (const auto& module : result->modules) {
          io.out() << module << "\n";
        }
        for (const auto& warning : result->warnings) {
          io.err() << fmt::format("warning: {}:{}: {}\n", warning.file, warning.line, warning.message);
        }
      } else {
        io.err() << "sandbox compile-string: " << core::describe(result.error()) << "\n";
        if (const auto* failed = std::get_if<core::CompilationFailed>(&result.error())) {
          for (const auto& d : failed->diagnostics) {
            io.err() << fmt::format("{}: {}:{}: {}\n", core::to_string(d.severity), d.file,
                                    d.line > 0 ? std::to_string(d.line) : "?", d.message);
          }
        }
      }
      if (!result && std::holds_alternative<core::InvalidOption>(result.error())) {
        return kExitUsage;
      }
      return result ? kExitOk : kExitFailed;
    };
  });

  auto* incremental = app.add_subcommand("incremental", "Compile only what changed since the last compile");
  incremental->add_option("path", m_paths, "Sandbox directory")->required()->expected(1);
  incremental->add_option("changed", m_changed, "Files known to have changed (detection still runs)");
  m_flags.add_to(*incremental);
  incremental->add_flag("--json", m_json, "Print one JSON object");
  incremental->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      std::string error;
      auto object = m_flags.to_options(error);
      if (!object) {
        return usage_error(io, m_json, "env", error);
      }
      auto options = core::parse_compile_options(*object);
      if (!options) {
        return usage_error(io, m_json, options.error().option, options.error().reason);
      }
      return finish_compile(io, compiler::incremental_compile(m_paths.front(), m_changed, *options), m_json);
    };
  });

  auto* cache = app.add_subcommand("cache", "Compile cache of a sandbox: stats or clear");
  cache->require_subcommand(1);
  auto* stats = cache->add_subcommand("stats", "Cache statistics");
  stats->add_option("path", m_paths, "Sandbox directory")->required()->expected(1);
  stats->add_flag("--json", m_json, "Print one JSON object");
  stats->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      auto result = compiler::get_cache_statistics(m_paths.front());
      if (!result) {
        if (m_json) {
          io.out() << util::dump_json(json{{"ok", false}, {"error", core::to_json(result.error())}}) << "\n";
        } else {
          io.err() << "sandbox cache stats: " << core::describe(result.error()) << "\n";
        }
        return kExitFailed;
      }
      if (m_json) {
        auto out = *result;
        out["ok"] = true;
        io.out() << util::dump_json(out) << "\n";
      } else {
        for (const auto& [key, value] : result->items()) {
          io.out() << fmt::format("{}: {}\n", key, util::dump_json(value));
        }
      }
      return kExitOk;
    };
  });
  auto* clear = cache->add_subcommand("clear", "Remove the sandbox's cache files");
  clear->add_option("path", m_paths, "Sandbox directory")->required()->expected(1);
  clear->add_flag("--json", m_json, "Print one JSON object");
  clear->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      return finish_action(io, compiler::clear_compilation_cache(m_paths.front()), m_json, "cache clear");
    };
  });

  auto* packages = cache->add_subcommand(
    "packages", "The engine's Hex package store (verified packages and their builds)");
  packages->add_flag("--prune", m_prune_packages, "Remove entries not used for --max-age seconds");
  packages->add_option("--max-age", m_prune_age, "With --prune: seconds unused (default 0: all)");
  packages->add_flag("--json", m_json, "Print one JSON object");
  packages->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      std::uint64_t removed = 0;
      if (m_prune_packages) {
        removed = compiler::prune_package_store(m_prune_age);
      }
      auto store = compiler::package_store_stats();
      json out = {{"ok", true},
                  {"path", compiler::packages_root().string()},
                  {"packages", store.sources},
                  {"builds", store.builds},
                  {"bytes", store.bytes},
                  {"removed", removed}};
      if (m_json) {
        io.out() << util::dump_json(out) << "\n";
      } else {
        io.out() << fmt::format("package store {}: {} packages, {} builds, {} bytes{}\n",
                                 out["path"].get<std::string>(), store.sources, store.builds,
                                 store.bytes,
                                 m_prune_packages ? fmt::format(" ({} removed)", removed) : "");
      }
      return kExitOk;
    };
  });

  auto* cleanup = app.add_subcommand("cleanup", "Remove a temp dir that a compile returned");
  cleanup->add_option("temp_dir", m_paths, "Temp dir")->required()->expected(1);
  cleanup->add_flag("--json", m_json, "Print one JSON object");
  cleanup->callback([this] {
    m_selected = [this] {
      const Io& io = m_io;
      return finish_action(io, compiler::cleanup_temp_artifacts(m_paths.front()), m_json, "cleanup");
    };
  });
  register_service_commands(app, m_selected);
  register_daemon_commands(app, m_selected, m_io);
}

int Commands::run()
{
  return m_selected ? m_selected() : kExitUsage;
}

} // namespace sandbox::cli
