// Finding toolchains: the system's in PATH, a prefix a request names, and the
// names registered in toolchains.conf; each checked once and described.

#include "backends/toolchain.h"

#include "jail/mounts.h"
#include "util/fs.h"
#include "util/hash.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

namespace sandbox::backends {

namespace {

std::vector<fs::path> search_dirs()
{
  std::vector<fs::path> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string_view rest(path);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto item = rest.substr(0, colon);
      if (!item.empty() && item.front() == '/') {
        dirs.emplace_back(item);
      }
      if (colon == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(colon + 1);
    }
  }
  for (const char* dir : {"/usr/local/bin", "/usr/bin", "/bin"}) {
    dirs.emplace_back(dir);
  }
  return dirs;
}

std::expected<fs::path, std::string> find_tool(const std::vector<fs::path>& dirs,
                                               std::string_view name)
{
  for (const auto& dir : dirs) {
    auto candidate = dir / name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::unexpected(fmt::format("{} not found in PATH, /usr/local/bin, /usr/bin or /bin "
                                     "(install Elixir and Erlang: make deps)",
                                     name));
}

std::string otp_version(const fs::path& erlang_root)
{
  std::error_code ec;
  std::string found;
  for (auto it = fs::directory_iterator(erlang_root / "releases", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (auto text = util::read_file(it->path() / "OTP_VERSION", 256); text) {
      found = text->substr(0, text->find_first_of("\r\n"));
    }
  }
  return found;
}

// "mtime-ns:size:inode" of a file, "-" when absent: a rebuilt toolchain at
// the same path is another toolchain.
std::string stamp(const fs::path& path)
{
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return "-";
  }
  return fmt::format("{}.{}:{}:{}", static_cast<long long>(st.st_mtim.tv_sec),
                     static_cast<long long>(st.st_mtim.tv_nsec), static_cast<long long>(st.st_size),
                     static_cast<unsigned long long>(st.st_ino));
}

void add_unique(std::vector<std::string>& list, std::string item)
{
  if (std::find(list.begin(), list.end(), item) == list.end()) {
    list.push_back(std::move(item));
  }
}

fs::path resolved_root(const fs::path& tool)
{
  std::error_code ec;
  auto real = fs::canonical(tool, ec);
  return ec ? fs::path() : real.parent_path().parent_path();
}

// Versions, identity and PATH once the five tools are known.
void describe(Toolchain& tools)
{
  tools.elixir_root = resolved_root(tools.elixir);
  tools.erlang_root = resolved_root(tools.erl);
  auto elixir_app = tools.elixir_root / "lib" / "elixir" / "ebin" / "elixir.app";
  tools.elixir_version = app_version(elixir_app);
  tools.otp_version = otp_version(tools.erlang_root);
  tools.identity = fmt::format("elixir {} at {} [{} {}]; otp {} at {} [{}]", tools.elixir_version,
                               tools.elixir_root.string(), stamp(elixir_app), stamp(tools.elixir),
                               tools.otp_version, tools.erlang_root.string(), stamp(tools.erl));
  std::vector<std::string> path_dirs;
  add_unique(path_dirs, tools.elixir.parent_path().string());
  add_unique(path_dirs, tools.erl.parent_path().string());
  add_unique(path_dirs, "/usr/bin");
  add_unique(path_dirs, "/bin");
  tools.path_env.clear();
  for (const auto& dir : path_dirs) {
    tools.path_env += (tools.path_env.empty() ? "" : ":") + dir;
  }
}

std::expected<ToolchainRef, std::string> locate_system()
{
  auto dirs = search_dirs();
  Toolchain tools;
  struct Entry {
    fs::path* slot;
    const char* name;
  };
  for (auto [slot, name] : {Entry{&tools.elixir, "elixir"}, Entry{&tools.elixirc, "elixirc"},
                            Entry{&tools.mix, "mix"}, Entry{&tools.erl, "erl"},
                            Entry{&tools.erlc, "erlc"}}) {
    auto found = find_tool(dirs, name);
    if (!found) {
      return std::unexpected(found.error());
    }
    *slot = *found;
  }
  tools.name = "system";
  tools.prefix = tools.elixir.parent_path().parent_path();
  tools.system = true;
  describe(tools);
  // The standard binds, plus wherever PATH found the tools (a /usr/local or
  // a version manager's directory), resolved through their links.
  tools.jail_paths = jail::MountOptions::default_toolchain();
  for (const auto& tool : {tools.elixir, tools.elixirc, tools.mix, tools.erl, tools.erlc}) {
    tools.jail_paths.push_back(tool);
  }
  for (const auto& root : {tools.elixir_root, tools.erlang_root}) {
    if (!root.empty()) {
      tools.jail_paths.push_back(root);
    }
  }
  return std::make_shared<const Toolchain>(std::move(tools));
}

core::Error invalid(std::string reason)
{
  return core::InvalidOption{"toolchain", std::move(reason)};
}

std::string last_lines(std::string_view text, std::size_t count)
{
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  std::size_t start = text.size();
  for (std::size_t seen = 0; start > 0 && seen < count; --start) {
    if (text[start - 1] == '\n' && ++seen == count) {
      break;
    }
  }
  auto tail = std::string(text.substr(start));
  return tail.size() > 600 ? tail.substr(tail.size() - 600) : tail;
}

// Starts the toolchain's Elixir once on the host (it is the operator's
// program, not a submission): it must boot and accept its Erlang/OTP.
std::expected<void, std::string> probe(const Toolchain& tools)
{
  jail::ProcessSpec spec;
  spec.argv = {tools.elixir.string(), "--eval",
               "IO.puts(\"sandbox-probe \" <> System.version() <> \" \" <> System.otp_release())"};
  auto home = util::TempDir::create(util::default_temp_root(), "sandbox-probe-");
  if (!home) {
    return std::unexpected("cannot create a temporary directory: " + home.error());
  }
  spec.env = {"PATH=" + tools.path_env, "HOME=" + home->path().string(),
              "TMPDIR=" + home->path().string(), "LANG=C.UTF-8", "ERL_CRASH_DUMP_SECONDS=0"};
  spec.cwd = home->path();
  spec.limits.wall_timeout_ms = 30'000;
  spec.limits.output_cap_bytes = 64 * 1024;
  spec.limits.memory_bytes = 0;
  jail::GroupRunner runner;
  auto result = runner.run(spec);
  if (result.succeeded() && result.output.find("sandbox-probe " + tools.elixir_version) != std::string::npos) {
    return {};
  }
  const auto& out = result.output;
  if (out.find("Unsupported Erlang/OTP") != std::string::npos ||
      out.find("this emulator supports only up to") != std::string::npos ||
      out.find("re-compile this module with an") != std::string::npos) {
    return std::unexpected(fmt::format("Elixir {} is too new for its Erlang/OTP {} ({}): {}",
                                       tools.elixir_version, tools.otp_version,
                                       tools.erlang_root.string(), last_lines(out, 2)));
  }
  std::string how = result.verdict == jail::Verdict::exited
                      ? fmt::format("exit status {}", result.exit_code)
                      : std::string(jail::to_string(result.verdict));
  if (result.verdict == jail::Verdict::setup_failure) {
    how = result.setup_stage + ": " + result.setup_error;
  }
  return std::unexpected(fmt::format("{} does not start ({}){}{}", tools.elixir.string(), how,
                                     out.empty() ? "" : ": ", last_lines(out, 3)));
}

// A prefix checked by an earlier process: <state>/toolchains/<identity hash>.
fs::path probe_stamp(const Toolchain& tools)
{
  return util::engine_state_dir() / "toolchains" / (util::sha256_hex(tools.identity) + ".ok");
}

std::expected<ToolchainRef, core::Error> locate_prefix(const std::string& name, const fs::path& dir)
{
  std::error_code ec;
  auto status = fs::status(dir, ec);
  if (!fs::exists(status)) {
    return std::unexpected(invalid(fmt::format("{} does not exist", dir.string())));
  }
  if (!fs::is_directory(status)) {
    return std::unexpected(invalid(fmt::format("{} is not a directory", dir.string())));
  }
  Toolchain tools;
  tools.name = name;
  tools.prefix = dir.lexically_normal();
  tools.system = false;
  auto bin = tools.prefix / "bin";
  for (auto [slot, tool] : {std::pair{&tools.elixir, "elixir"}, std::pair{&tools.elixirc, "elixirc"},
                            std::pair{&tools.mix, "mix"}}) {
    *slot = bin / tool;
    if (::access(slot->c_str(), X_OK) != 0) {
      return std::unexpected(invalid(fmt::format(
        "{} is not an Elixir installation: {} is missing or not executable (a prefix holds "
        "bin/elixir, bin/elixirc, bin/mix and lib/elixir/ebin)",
        dir.string(), slot->string())));
    }
  }
  bool own_erlang = ::access((bin / "erl").c_str(), X_OK) == 0;
  if (own_erlang) {
    tools.erl = bin / "erl";
    tools.erlc = bin / "erlc";
    if (::access(tools.erlc.c_str(), X_OK) != 0) {
      return std::unexpected(invalid(fmt::format("{} has bin/erl but no bin/erlc", dir.string())));
    }
  } else {
    const auto& system = system_toolchain();
    if (!system) {
      return std::unexpected(invalid(fmt::format(
        "{} has no Erlang/OTP of its own (bin/erl) and the system has none: {}", dir.string(),
        system.error())));
    }
    tools.erl = (*system)->erl;
    tools.erlc = (*system)->erlc;
  }
  describe(tools);
  if (tools.elixir_version.empty()) {
    return std::unexpected(invalid(fmt::format(
      "{} is not an Elixir installation: {} is missing (is it built? `make compile` in a source "
      "tree)",
      dir.string(), (tools.elixir_root / "lib" / "elixir" / "ebin" / "elixir.app").string())));
  }
  if (tools.otp_version.empty()) {
    return std::unexpected(invalid(fmt::format("the Erlang/OTP of {} ({}) has no releases/*/OTP_VERSION",
                                               dir.string(), tools.erlang_root.string())));
  }
  tools.jail_paths = jail::MountOptions::system_base();
  if (own_erlang) {
    for (const char* tool : {"erl", "erlc", "escript"}) {
      tools.jail_paths.push_back(bin / tool);
    }
    tools.jail_paths.push_back(tools.erlang_root);
  } else {
    for (auto& path : jail::MountOptions::system_erlang()) {
      tools.jail_paths.push_back(std::move(path));
    }
    tools.jail_paths.push_back(tools.erl);
    tools.jail_paths.push_back(tools.erlc);
    tools.jail_paths.push_back(tools.erlang_root);
  }
  for (const char* tool : {"elixir", "elixirc", "mix", "iex"}) {
    tools.jail_paths.push_back(bin / tool);
  }
  tools.jail_paths.push_back(tools.elixir_root / "bin");
  tools.jail_paths.push_back(tools.elixir_root / "lib");

  auto stamp_file = probe_stamp(tools);
  if (!fs::exists(stamp_file, ec)) {
    if (auto started = probe(tools); !started) {
      return std::unexpected(invalid(started.error()));
    }
    fs::create_directories(stamp_file.parent_path(), ec);
    (void)util::write_file_replace(stamp_file, tools.identity + "\n", 0600);
  }
  return std::make_shared<const Toolchain>(std::move(tools));
}

std::string trim(std::string_view text)
{
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

} // namespace

bool Toolchain::elixir_at_least(int major, int minor) const
{
  int have_major = 0;
  int have_minor = 0;
  if (std::sscanf(elixir_version.c_str(), "%d.%d", &have_major, &have_minor) != 2) {
    return false;
  }
  return have_major > major || (have_major == major && have_minor >= minor);
}

nlohmann::json Toolchain::to_json() const
{
  return {{"name", name},
          {"elixir", elixir_version},
          {"otp", otp_version},
          {"path", prefix.string()},
          {"erlang_path", erlang_root.string()}};
}

const std::expected<ToolchainRef, std::string>& system_toolchain()
{
  static const auto tools = locate_system();
  return tools;
}

const std::string& toolchain_identity()
{
  static const std::string identity = [] {
    const auto& tools = system_toolchain();
    return tools ? (*tools)->identity : std::string("no toolchain");
  }();
  return identity;
}

std::string app_version(const fs::path& app_file)
{
  auto text = util::read_file(app_file, 64 * 1024);
  if (!text) {
    return {};
  }
  auto at = text->find("{vsn,\"");
  if (at == std::string::npos) {
    return {};
  }
  at += 6;
  auto end = text->find('"', at);
  return end == std::string::npos ? std::string() : text->substr(at, std::min<std::size_t>(end - at, 64));
}

bool valid_toolchain_name(std::string_view name)
{
  if (name.empty() || name.size() > 64 || name == "system") {
    return false;
  }
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!word(name.front())) {
    return false;
  }
  return std::ranges::all_of(name, [&](char c) { return word(c) || c == '.' || c == '_' || c == '-'; });
}

fs::path toolchain_config_file()
{
  if (const char* dir = std::getenv("SANDBOX_CONFIG_DIR"); dir != nullptr && *dir == '/') {
    return fs::path(dir) / "toolchains.conf";
  }
  if (const char* dir = std::getenv("XDG_CONFIG_HOME"); dir != nullptr && *dir == '/') {
    return fs::path(dir) / "sandbox" / "toolchains.conf";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return fs::path(home) / ".config" / "sandbox" / "toolchains.conf";
  }
  return "/etc/sandbox/toolchains.conf";
}

std::expected<std::vector<RegisteredToolchain>, std::string> registered_toolchains()
{
  auto file = toolchain_config_file();
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return std::vector<RegisteredToolchain>{};
  }
  auto text = util::read_file(file, 256 * 1024);
  if (!text) {
    return std::unexpected(fmt::format("{}: {}", file.string(), text.error()));
  }
  std::vector<RegisteredToolchain> out;
  std::size_t start = 0;
  int number = 0;
  while (start < text->size()) {
    auto end = text->find('\n', start);
    if (end == std::string::npos) {
      end = text->size();
    }
    ++number;
    std::string_view line(text->data() + start, end - start);
    start = end + 1;
    if (auto hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    auto content = trim(line);
    if (content.empty()) {
      continue;
    }
    auto equals = content.find('=');
    auto name = trim(std::string_view(content).substr(0, equals));
    auto dir = equals == std::string::npos ? std::string() : trim(std::string_view(content).substr(equals + 1));
    if (equals == std::string::npos || !valid_toolchain_name(name) || dir.empty() || dir.front() != '/') {
      return std::unexpected(fmt::format(
        "{}:{}: expected NAME = /absolute/prefix (NAME: letters, digits, '.', '_', '-'; not "
        "\"system\")",
        file.string(), number));
    }
    out.push_back({name, dir});
  }
  return out;
}

std::expected<ToolchainRef, core::Error> resolve_toolchain(std::string_view spec)
{
  if (spec.empty() || spec == "system") {
    const auto& system = system_toolchain();
    if (!system) {
      return std::unexpected(core::JailSetupFailed{"toolchain", system.error()});
    }
    return *system;
  }
  std::string name(spec);
  fs::path dir;
  if (spec.front() == '/') {
    dir = fs::path(name);
  } else {
    auto registered = registered_toolchains();
    if (!registered) {
      return std::unexpected(invalid(registered.error()));
    }
    auto found = std::ranges::find_if(*registered, [&](const auto& r) { return r.name == spec; });
    if (found == registered->end()) {
      std::string names = "system";
      for (const auto& r : *registered) {
        names += ", " + r.name;
      }
      return std::unexpected(invalid(fmt::format(
        "no toolchain named \"{}\" (known: {}; register one in {} or give an absolute prefix)",
        name, names, toolchain_config_file().string())));
    }
    dir = found->directory;
  }
  // One check per prefix and process, again when its files change.
  static std::mutex mutex;
  static std::map<std::string, ToolchainRef> known;
  std::lock_guard lock(mutex);
  auto key = name + "\n" + dir.string();
  if (auto it = known.find(key); it != known.end()) {
    Toolchain fresh = *it->second;
    describe(fresh);
    if (fresh.identity == it->second->identity) {
      return it->second;
    }
  }
  auto located = locate_prefix(name, dir);
  if (located) {
    known[key] = *located;
  }
  return located;
}

std::expected<ToolchainRef, core::Error> require_toolchain(const BackendRequest& request)
{
  if (request.toolchain) {
    return request.toolchain;
  }
  return resolve_toolchain(request.options != nullptr ? request.options->toolchain : std::string());
}

} // namespace sandbox::backends
