#include "core/options.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

namespace sandbox::core {

namespace {

using nlohmann::json;

std::unexpected<InvalidOption> invalid(std::string_view option, std::string reason)
{
  return std::unexpected(InvalidOption{std::string(option), std::move(reason)});
}

std::string type_name(const json& value)
{
  return value.type_name();
}

std::expected<bool, InvalidOption> get_bool(std::string_view key, const json& value)
{
  if (!value.is_boolean()) {
    return invalid(key, "expected a boolean, got " + type_name(value));
  }
  return value.get<bool>();
}

std::expected<std::int64_t, InvalidOption> get_int(std::string_view key, const json& value,
                                                    std::int64_t min, std::int64_t max)
{
  std::int64_t n = 0;
  if (value.is_number_integer()) {
    n = value.get<std::int64_t>();
  } else if (value.is_number_float() && std::trunc(value.get<double>()) == value.get<double>() &&
             std::abs(value.get<double>()) < 9e15) {
    n = static_cast<std::int64_t>(value.get<double>());
  } else if (value.is_string()) {
    auto text = value.get<std::string>();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return invalid(key, fmt::format("expected an integer, got \"{}\"", text));
    }
  } else {
    return invalid(key, "expected an integer, got " + type_name(value));
  }
  if (n < min || n > max) {
    return invalid(key, fmt::format("{} is out of range [{}, {}]", n, min, max));
  }
  return n;
}

std::expected<std::vector<std::string>, InvalidOption> get_string_list(std::string_view key,
                                                                       const json& value)
{
  if (!value.is_array()) {
    return invalid(key, "expected a list of strings, got " + type_name(value));
  }
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return invalid(key, "expected a list of non-empty strings");
    }
    if (item.get<std::string>().find('\0') != std::string::npos) {
      return invalid(key, "a string contains a NUL byte");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

bool valid_env_name(std::string_view name)
{
  if (name.empty() || name.size() > 256 || (std::isdigit(static_cast<unsigned char>(name[0])))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Module names as the specification writes them: ":os" or "os" for Erlang
// modules, "System" or "Elixir.System" for Elixir ones. Stored as ":os" and
// "System".
std::expected<std::string, std::string> normalize_module(std::string name)
{
  // ":Elixir.System" and ":\"Elixir.System\"" are the atom of an Elixir module.
  std::string atom = name.starts_with(':') ? name.substr(1) : name;
  if (atom.size() >= 2 && atom.front() == '"' && atom.back() == '"') {
    atom = atom.substr(1, atom.size() - 2);
  }
  if (atom.starts_with("Elixir.")) {
    name = atom.substr(7);
  } else if (name.starts_with(':')) {
    name = ":" + atom;
  }
  if (name.empty()) {
    return std::unexpected("empty module name");
  }
  bool erlang = name[0] == ':' || std::islower(static_cast<unsigned char>(name[0]));
  std::string body = name[0] == ':' ? name.substr(1) : name;
  if (body.empty() || body.size() > 255) {
    return std::unexpected("bad module name \"" + name + "\"");
  }
  for (char c : body) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) {
      return std::unexpected("bad module name \"" + name + "\"");
    }
  }
  return erlang ? ":" + body : body;
}

const std::array kOperations = {
  "system_command", "code_evaluation", "code_loading", "file_read",     "file_write",
  "file_delete",    "network_access",  "process_spawn", "port_access", "system_halt",
  "nif_loading",    "distribution",    "dynamic_dispatch", "database_access", "host_path_access",
  "process_introspection", "path_operations", "mix_task",
};

} // namespace

std::string_view to_string(Backend backend)
{
  switch (backend) {
  case Backend::mix: return "mix";
  case Backend::elixirc: return "elixirc";
  case Backend::erlc: return "erlc";
  case Backend::in_process: return "in_process";
  }
  return "mix";
}

std::string_view to_string(IsolationMode mode)
{
  switch (mode) {
  case IsolationMode::jail: return "jail";
  case IsolationMode::process_group: return "process_group";
  }
  return "jail";
}

std::string_view to_string(WorkerReuse reuse)
{
  switch (reuse) {
  case WorkerReuse::confined: return "confined";
  case WorkerReuse::never: return "never";
  }
  return "confined";
}

std::string_view to_string(ScanScope scope)
{
  switch (scope) {
  case ScanScope::compiled: return "compiled";
  case ScanScope::all: return "all";
  }
  return "compiled";
}

std::vector<std::string> default_restricted_modules()
{
  return {":os", ":file", ":code", ":erlang", "System", "File", "Code", "Port"};
}

const std::vector<std::string_view>& known_option_names()
{
  static const std::vector<std::string_view> names = {
    "timeout",          "memory_limit",      "temp_dir",          "validate_beams",
    "compiler",         "env",               "source_files",      "incremental",
    "force_recompile",  "cache_enabled",     "skip_cache",        "dependency_analysis",
    "cpu_limit",        "max_processes",     "security_scan",     "restricted_modules",
    "allowed_operations", "in_process",      "output_limit",      "isolation",
    "scan_scope",       "package_mirror",    "toolchain",         "worker_reuse",
  };
  return names;
}

bool is_reserved_env_name(std::string_view name)
{
  static constexpr std::array reserved = {
    "PATH",         "HOME",           "TMPDIR",          "MIX_BUILD_PATH", "MIX_DEPS_PATH",
    "MIX_HOME",     "MIX_ARCHIVES",   "MIX_INSTALL_DIR", "MIX_INSTALL_FORCE", "MIX_BUILD_ROOT",
    "LD_PRELOAD",   "LD_LIBRARY_PATH", "LD_AUDIT",       "ERL_LIBS",       "SANDBOX_REPORT",
    "ELIXIR_ERL_OPTIONS", "ERL_FLAGS", "ERL_AFLAGS",     "ERL_ZFLAGS",     "ERL_ROOTDIR",
    "BINDIR",       "ROOTDIR",        "EMU",             "PROGNAME",       "SANDBOX_PACKAGES",
    "SANDBOX_PACKAGES_ONLY", "HEX_OFFLINE",
  };
  return std::find(reserved.begin(), reserved.end(), name) != reserved.end();
}

std::expected<std::uint64_t, std::string> parse_byte_size(std::string_view text)
{
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) {
    return std::unexpected(fmt::format("\"{}\" is not a size (e.g. 268435456, 256M, 1G)", text));
  }
  std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  std::uint64_t multiplier = 1;
  if (suffix.empty() || suffix == "B") {
    multiplier = 1;
  } else if (suffix == "K" || suffix == "KB" || suffix == "KiB" || suffix == "k") {
    multiplier = 1ull << 10;
  } else if (suffix == "M" || suffix == "MB" || suffix == "MiB" || suffix == "m") {
    multiplier = 1ull << 20;
  } else if (suffix == "G" || suffix == "GB" || suffix == "GiB" || suffix == "g") {
    multiplier = 1ull << 30;
  } else {
    return std::unexpected(fmt::format("\"{}\" has an unknown unit \"{}\"", text, suffix));
  }
  if (value > std::numeric_limits<std::uint64_t>::max() / multiplier) {
    return std::unexpected(fmt::format("\"{}\" is too large", text));
  }
  return value * multiplier;
}

std::expected<CompileOptions, InvalidOption> parse_compile_options(const json& object)
{
  CompileOptions options;
  if (object.is_null()) {
    return options;
  }
  if (!object.is_object()) {
    return invalid("options", "expected an object of options, got " + type_name(object));
  }
  const auto& names = known_option_names();
  for (const auto& [key, value] : object.items()) {
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      return invalid(key, "unknown option");
    }
    options.given.push_back(key);
    if (key == "timeout") {
      auto n = get_int(key, value, 1, 24LL * 3600 * 1000);
      if (!n) return std::unexpected(n.error());
      options.timeout_ms = *n;
    } else if (key == "memory_limit" || key == "output_limit") {
      std::uint64_t bytes = 0;
      if (value.is_string()) {
        auto parsed = parse_byte_size(value.get<std::string>());
        if (!parsed) return invalid(key, parsed.error());
        bytes = *parsed;
      } else {
        auto n = get_int(key, value, 1, std::numeric_limits<std::int64_t>::max());
        if (!n) return std::unexpected(n.error());
        bytes = static_cast<std::uint64_t>(*n);
      }
      std::uint64_t min = key == "memory_limit" ? 16ull << 20 : 4096;
      std::uint64_t max = 1ull << 40;
      if (bytes < min || bytes > max) {
        return invalid(key, fmt::format("{} bytes is out of range [{}, {}]", bytes, min, max));
      }
      (key == "memory_limit" ? options.memory_limit : options.output_limit) = bytes;
    } else if (key == "package_mirror") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        return invalid(key, "expected an absolute directory or an http(s) URL");
      }
      auto text = value.get<std::string>();
      auto lower = text.substr(0, 8);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      bool url = lower.starts_with("http://") || lower.starts_with("https://");
      if (!url && (text.front() != '/' || text.find('\0') != std::string::npos)) {
        return invalid(key, "expected an absolute directory or an http(s) URL, got \"" +
                              text.substr(0, 200) + "\"");
      }
      if (text.size() > 4096) {
        return invalid(key, "longer than 4096 bytes");
      }
      options.package_mirror = std::move(text);
    } else if (key == "toolchain") {
      if (!value.is_string()) {
        return invalid(key, "expected an absolute Elixir installation prefix or a registered name");
      }
      auto text = value.get<std::string>();
      auto name_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
      };
      bool absolute = !text.empty() && text.front() == '/' && text.size() <= 4096 &&
                      text.find('\0') == std::string::npos;
      bool name = !text.empty() && text.size() <= 64 && text.front() != '.' && text.front() != '-' &&
                  std::all_of(text.begin(), text.end(), name_char);
      if (!absolute && !name) {
        return invalid(key, "expected an absolute Elixir installation prefix or a registered name "
                            "(letters, digits, '.', '_', '-'), got \"" + text.substr(0, 200) + "\"");
      }
      options.toolchain = text == "system" ? std::string() : std::move(text);
    } else if (key == "temp_dir") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        return invalid(key, "expected a directory path");
      }
      options.temp_dir = value.get<std::string>();
    } else if (key == "compiler") {
      if (!value.is_string()) return invalid(key, "expected one of mix, elixirc, erlc, in_process");
      auto name = value.get<std::string>();
      if (name.starts_with(':')) name = name.substr(1);
      if (name == "mix") options.compiler = Backend::mix;
      else if (name == "elixirc") options.compiler = Backend::elixirc;
      else if (name == "erlc") options.compiler = Backend::erlc;
      else if (name == "in_process") options.compiler = Backend::in_process;
      else return invalid(key, fmt::format("\"{}\" is not one of mix, elixirc, erlc, in_process", name));
    } else if (key == "isolation") {
      if (!value.is_string()) return invalid(key, "expected jail or process_group");
      auto name = value.get<std::string>();
      if (name == "jail") options.isolation = IsolationMode::jail;
      else if (name == "process_group") options.isolation = IsolationMode::process_group;
      else return invalid(key, fmt::format("\"{}\" is not one of jail, process_group", name));
    } else if (key == "worker_reuse") {
      if (!value.is_string()) return invalid(key, "expected confined or never");
      auto name = value.get<std::string>();
      if (name.starts_with(':')) name = name.substr(1);
      if (name == "confined") options.worker_reuse = WorkerReuse::confined;
      else if (name == "never") options.worker_reuse = WorkerReuse::never;
      else return invalid(key, fmt::format("\"{}\" is not one of confined, never", name.substr(0, 200)));
    } else if (key == "scan_scope") {
      if (!value.is_string()) return invalid(key, "expected compiled or all");
      auto name = value.get<std::string>();
      if (name.starts_with(':')) name = name.substr(1);
      if (name == "compiled") options.scan_scope = ScanScope::compiled;
      else if (name == "all") options.scan_scope = ScanScope::all;
      else return invalid(key, fmt::format("\"{}\" is not one of compiled, all", name));
    } else if (key == "env") {
      if (!value.is_object()) return invalid(key, "expected an object of string values");
      for (const auto& [name, var] : value.items()) {
        if (!valid_env_name(name)) return invalid(key, fmt::format("\"{}\" is not a valid variable name", name));
        if (is_reserved_env_name(name)) return invalid(key, fmt::format("{} is set by the engine and cannot be overridden", name));
        if (!var.is_string()) return invalid(key, fmt::format("the value of {} must be a string", name));
        if (var.get<std::string>().find('\0') != std::string::npos) return invalid(key, fmt::format("the value of {} contains a NUL byte", name));
        options.env[name] = var.get<std::string>();
      }
    } else if (key == "source_files") {
      auto list = get_string_list(key, value);
      if (!list) return std::unexpected(list.error());
      options.source_files = std::move(*list);
    } else if (key == "restricted_modules") {
      auto list = get_string_list(key, value);
      if (!list) return std::unexpected(list.error());
      options.restricted_modules.clear();
      for (auto& name : *list) {
        auto normalized = normalize_module(name);
        if (!normalized) return invalid(key, normalized.error());
        options.restricted_modules.push_back(*normalized);
      }
    } else if (key == "allowed_operations") {
      auto list = get_string_list(key, value);
      if (!list) return std::unexpected(list.error());
      for (auto& op : *list) {
        if (op.starts_with(':')) op = op.substr(1);
        if (std::find(kOperations.begin(), kOperations.end(), op) == kOperations.end()) {
          return invalid(key, fmt::format("\"{}\" is not a known operation", op));
        }
      }
      options.allowed_operations = std::move(*list);
    } else if (key == "cpu_limit") {
      double pct = 0;
      if (value.is_number()) {
        pct = value.get<double>();
      } else if (value.is_string()) {
        auto text = value.get<std::string>();
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pct);
        if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
          return invalid(key, fmt::format("expected a number, got \"{}\"", text));
        }
      } else {
        return invalid(key, "expected a number, got " + type_name(value));
      }
      if (!(pct > 0.0 && pct <= 100.0)) return invalid(key, fmt::format("{} is out of range (0, 100]", pct));
      options.cpu_limit = pct;
    } else if (key == "max_processes") {
      auto n = get_int(key, value, 1, 100'000);
      if (!n) return std::unexpected(n.error());
      options.max_processes = static_cast<int>(*n);
    } else if (key == "in_process") {
      auto b = get_bool(key, value);
      if (!b) return std::unexpected(b.error());
      if (*b) options.compiler = Backend::in_process;
    } else {
      auto b = get_bool(key, value);
      if (!b) return std::unexpected(b.error());
      if (key == "validate_beams") options.validate_beams = *b;
      else if (key == "incremental") options.incremental = *b;
      else if (key == "force_recompile") options.force_recompile = *b;
      else if (key == "cache_enabled") options.cache_enabled = *b;
      else if (key == "skip_cache") options.skip_cache = *b;
      else if (key == "dependency_analysis") options.dependency_analysis = *b;
      else if (key == "security_scan") options.security_scan = *b;
    }
  }
  return options;
}

json to_json(const CompileOptions& options)
{
  json out;
  out["timeout"] = options.timeout_ms;
  out["memory_limit"] = options.memory_limit;
  out["temp_dir"] = options.temp_dir ? json(options.temp_dir->string()) : json(nullptr);
  out["validate_beams"] = options.validate_beams;
  out["compiler"] = to_string(options.compiler);
  out["env"] = options.env;
  out["source_files"] = options.source_files;
  out["incremental"] = options.incremental;
  out["force_recompile"] = options.force_recompile;
  out["cache_enabled"] = options.cache_enabled;
  out["skip_cache"] = options.skip_cache;
  out["dependency_analysis"] = options.dependency_analysis;
  out["cpu_limit"] = options.cpu_limit;
  out["max_processes"] = options.max_processes;
  out["security_scan"] = options.security_scan;
  out["restricted_modules"] = options.restricted_modules;
  out["allowed_operations"] = options.allowed_operations;
  out["scan_scope"] = to_string(options.scan_scope);
  if (!options.package_mirror.empty()) {
    out["package_mirror"] = options.package_mirror;
  }
  if (!options.toolchain.empty()) {
    out["toolchain"] = options.toolchain;
  }
  out["output_limit"] = options.output_limit;
  out["isolation"] = to_string(options.isolation);
  out["worker_reuse"] = to_string(options.worker_reuse);
  return out;
}

} // namespace sandbox::core
