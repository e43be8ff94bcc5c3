#include "cli/service_commands.h"

#include "backends/toolchain.h"

#include "cli/commands.h"
#include "core/options.h"
#include "service/protocol.h"
#include "service/server.h"
#include "fleet/redis.h"
#include "util/fs.h"
#include "util/json.h"

#include <fmt/format.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <vector>
#include <memory>
#include <string>

namespace sandbox::cli {

namespace {

struct ServeFlags {
  std::string socket;
  std::string mode = "0600";
  std::size_t jobs = 2;
  std::size_t queue = 16;
  std::string max_request = "16M";
  std::size_t max_connections = 64;
  int grace_ms = 10'000;
  std::size_t workers = 2;
  std::size_t prestart = 1;
  std::string warm_toolchain;
  std::vector<std::string> allow_users;
  std::vector<std::string> allow_groups;
  std::size_t caller_share = 0;
  std::string cluster;
  std::string fleet_key_file;
  std::string cluster_namespace = "sandbox";
  std::int64_t claim_timeout_ms = 30'000;
  std::size_t cluster_queue = 256;
};

// The fleet's settings from the flags, or the message for a usage error.
std::expected<fleet::FleetSettings, std::string> cluster_settings(const ServeFlags& flags)
{
  fleet::FleetSettings out;
  auto url = fleet::parse_redis_url(flags.cluster);
  if (!url) {
    return std::unexpected("--cluster: " + url.error());
  }
  out.url = *url;
  if (flags.fleet_key_file.empty()) {
    return std::unexpected("--cluster needs --fleet-key-file: the key every node of the fleet shares");
  }
  struct stat st{};
  if (::stat(flags.fleet_key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return std::unexpected(fmt::format("--fleet-key-file {}: readable by others (mode {:o}); chmod 600 it",
                                       flags.fleet_key_file, st.st_mode & 0777));
  }
  auto key = util::read_file(flags.fleet_key_file, 4096);
  if (!key) {
    return std::unexpected("--fleet-key-file: " + key.error());
  }
  while (!key->empty() && (key->back() == '\n' || key->back() == '\r')) {
    key->pop_back();
  }
  if (key->size() < 16) {
    return std::unexpected("--fleet-key-file: the key is shorter than 16 bytes");
  }
  out.key = *key;
  const auto& ns = flags.cluster_namespace;
  if (ns.empty() || ns.size() > 64 ||
      ns.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != std::string::npos) {
    return std::unexpected("--cluster-namespace: 1 to 64 letters, digits, '_', '-' or '.'");
  }
  out.ns = ns;
  if (flags.claim_timeout_ms < 500) {
    return std::unexpected("--claim-timeout: at least 500 ms");
  }
  out.claim_timeout = std::chrono::milliseconds{flags.claim_timeout_ms};
  if (flags.cluster_queue == 0) {
    return std::unexpected("--cluster-queue: at least 1");
  }
  out.max_stream = flags.cluster_queue;
  out.jobs = flags.jobs;
  out.engine_version = SANDBOX_VERSION;
  return out;
}

std::optional<unsigned> numeric_id(const std::string& text)
{
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// A user or group given by name or by number; nullopt when neither. `lookup`
// is getpwnam_r or getgrnam_r, `id_of` reads the id out of the entry.
template <class Entry, class Lookup, class IdOf>
std::optional<unsigned> named_id(const std::string& name, Lookup lookup, IdOf id_of)
{
  if (auto number = numeric_id(name)) {
    return number;
  }
  std::vector<char> buffer(16384);
  Entry entry{};
  Entry* found = nullptr;
  if (lookup(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return id_of(*found);
  }
  return std::nullopt;
}

std::optional<unsigned> user_id(const std::string& name)
{
  return named_id<passwd>(name, ::getpwnam_r, [](const passwd& entry) { return entry.pw_uid; });
}

std::optional<unsigned> group_id(const std::string& name)
{
  return named_id<group>(name, ::getgrnam_r, [](const group& entry) { return entry.gr_gid; });
}

int serve(const ServeFlags& flags)
{
  // Under socket activation the socket comes from systemd and --socket may be left out.
  if (flags.socket.empty() && std::getenv("LISTEN_FDS") == nullptr) {
    std::cerr << "sandbox serve: --socket is required unless systemd passes the socket (LISTEN_FDS)\n";
    return kExitUsage;
  }
  service::ServerSettings settings;
  settings.socket_path = flags.socket;
  std::size_t used = 0;
  unsigned long mode = 0;
  try {
    mode = std::stoul(flags.mode, &used, 8);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != flags.mode.size() || mode > 0777) {
    std::cerr << fmt::format("sandbox serve: --socket-mode must be octal, e.g. 0600 (got {})\n", flags.mode);
    return kExitUsage;
  }
  auto max_request = core::parse_byte_size(flags.max_request);
  if (!max_request || *max_request < 1024) {
    std::cerr << "sandbox serve: --max-request-bytes must be a size of at least 1K\n";
    return kExitUsage;
  }
  if ((flags.jobs == 0 && flags.cluster.empty()) || flags.workers == 0 || flags.max_connections == 0 ||
      flags.grace_ms < 0) {
    std::cerr << "sandbox serve: --jobs (except on a node of a fleet), --workers and --max-connections must be at "
                 "least 1\n";
    return kExitUsage;
  }
  if (!flags.cluster.empty()) {
    auto cluster = cluster_settings(flags);
    if (!cluster) {
      std::cerr << "sandbox serve: " << cluster.error() << "\n";
      return kExitUsage;
    }
    settings.cluster = std::move(*cluster);
  }
  for (const auto& name : flags.allow_users) {
    auto id = user_id(name);
    if (!id) {
      std::cerr << fmt::format("sandbox serve: --allow-users: no user {}\n", name);
      return kExitUsage;
    }
    settings.allow_users.push_back(*id);
  }
  for (const auto& name : flags.allow_groups) {
    auto id = group_id(name);
    if (!id) {
      std::cerr << fmt::format("sandbox serve: --allow-groups: no group {}\n", name);
      return kExitUsage;
    }
    settings.allow_groups.push_back(*id);
  }
  settings.caller_share = flags.caller_share;
  settings.socket_mode = static_cast<mode_t>(mode);
  settings.max_jobs = flags.jobs;
  settings.max_queue = flags.queue;
  settings.max_request_bytes = *max_request;
  settings.max_connections = flags.max_connections;
  settings.shutdown_grace_ms = flags.grace_ms;
  compiler::WorkerPoolSettings pool;
  pool.size = flags.workers;
  pool.prestart = std::min(flags.prestart, flags.workers);
  pool.toolchain = flags.warm_toolchain;
  if (!pool.toolchain.empty()) {
    if (auto tools = backends::resolve_toolchain(pool.toolchain); !tools) {
      std::cerr << "sandbox serve: --warm-toolchain: " << core::describe(tools.error()) << "\n";
      return kExitUsage;
    }
  }
  settings.worker_pool = pool;
  return service::serve(settings, std::cerr);
}

int request()
{
  std::string line;
  if (!std::getline(std::cin, line)) {
    std::cout << util::dump_json(service::protocol_error(service::kind::malformed_request,
                                                         {{"reason", "no request on stdin"}}))
              << "\n";
    return kExitUsage;
  }
  auto response = service::answer_line(line);
  std::cout << util::dump_json(response) << std::endl;
  return response.value("ok", false) ? kExitOk : kExitFailed;
}

} // namespace

void register_service_commands(CLI::App& app, std::function<int()>& selected)
{
  auto flags = std::make_shared<ServeFlags>();
  auto* serve_command = app.add_subcommand("serve", "Run the engine on a Unix socket (docs/protocol.md)");
  serve_command->add_option("--socket", flags->socket,
                            "Socket path (required unless systemd passes the socket: socket activation)");
  serve_command->add_option("--socket-mode", flags->mode, "Socket file mode, octal (default 0600)");
  serve_command->add_option("--jobs", flags->jobs, "Jobs running at once (default 2); on a node of a fleet, 0 makes a gateway that only submits");
  serve_command->add_option("--queue", flags->queue, "Jobs waiting beyond those; more are answered busy (default 16)");
  serve_command->add_option("--max-request-bytes", flags->max_request, "Largest request line (default 16M)");
  serve_command->add_option("--max-connections", flags->max_connections, "Clients connected at once (default 64)");
  serve_command->add_option("--shutdown-grace", flags->grace_ms,
                            "On SIGTERM, ms running jobs may finish before they are cancelled (default 10000)");
  serve_command->add_option("--workers", flags->workers, "Warm in_process workers at most (default 2)");
  serve_command->add_option("--prestart", flags->prestart, "Idle warm workers kept ready (default 1)");
  serve_command->add_option("--warm-toolchain", flags->warm_toolchain,
                            "Toolchain (prefix or registered name) of the prestarted workers "
                            "(default: the system's, then that of the latest job)");
  serve_command
    ->add_option("--allow-users", flags->allow_users,
                 "Users (names or ids) who may connect besides root and the service's user; "
                 "default: anyone the socket mode lets in")
    ->delimiter(',');
  serve_command
    ->add_option("--allow-groups", flags->allow_groups,
                 "Groups (names or ids) whose members may connect")
    ->delimiter(',');
  serve_command->add_option("--caller-share", flags->caller_share,
                            "Jobs one caller may hold, running and queued (default half of --jobs + --queue)");
  serve_command->add_option("--cluster", flags->cluster,
                            "Join a fleet on Redis: redis://HOST:PORT/DB or redis+unix:///PATH (docs/fleet.md)");
  serve_command->add_option("--fleet-key-file", flags->fleet_key_file,
                            "The key every node of the fleet shares (mode 0600, at least 16 bytes)");
  serve_command->add_option("--cluster-namespace", flags->cluster_namespace,
                            "Prefix of the fleet's keys in Redis (default sandbox)");
  serve_command->add_option("--claim-timeout", flags->claim_timeout_ms,
                            "ms after which a job whose node went silent runs elsewhere (default 30000)");
  serve_command->add_option("--cluster-queue", flags->cluster_queue,
                            "Jobs waiting or running in the fleet's queue; beyond, busy (default 256)");
  serve_command->callback([&selected, flags] { selected = [flags] { return serve(*flags); }; });

  auto* request_command =
    app.add_subcommand("request", "Answer one protocol request read as a JSON line on stdin");
  request_command->callback([&selected] { selected = [] { return request(); }; });
}

} // namespace sandbox::cli
