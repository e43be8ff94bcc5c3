// `sandbox daemon status|stop|start|run`: the per-user background engine that
// compile, compile-file, compile-string, incremental, scan and cache go to
// (docs/daemon.md).

#include "cli/daemon_command.h"

#include "cli/commands.h"
#include "cli/engine_client.h"
#include "cli/engine_server.h"
#include "util/json.h"

#include <unistd.h>

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

namespace sandbox::cli {

namespace {

using nlohmann::json;

struct DaemonFlags {
  bool json = false;
  std::string socket;
  long idle_exit = engine::kDefaultIdleExitSeconds;
  std::size_t prestart = 1;
};

// The engine's status object, or nullopt when none answers.
std::optional<json> ask(const engine::Location& where, const std::string& kind)
{
  auto fd = engine::connect_engine(where);
  if (!fd) {
    return std::nullopt;
  }
  auto answer = engine::exchange(fd->get(), engine::make_request(kind));
  auto status = json::parse(answer.status, nullptr, false);
  if (status.is_discarded() || !status.is_object()) {
    return std::nullopt;
  }
  return status;
}

int print_status(const Io& io, const DaemonFlags& flags, const engine::Location& where,
                 const std::optional<json>& status, const char* verb)
{
  json out = {
      {"ok", true}, {"running", status.has_value()}, {"socket", where.socket}, {"log", where.log}};
  if (status) {
    out.update(*status);
  }
  if (flags.json) {
    io.out() << util::dump_json(out) << "\n";
  } else if (status) {
    io.out() << fmt::format(
        "{} background engine pid {} ({}), socket {}, {} commands, idle exit {} s\n", verb,
        (*status)["pid"].get<long>(), (*status)["version"].get<std::string>(), where.socket,
        (*status)["commands"].get<long>(), (*status)["idle_exit"].get<long>());
  } else {
    io.out() << fmt::format("no background engine running (socket {})\n", where.socket);
  }
  return kExitOk;
}

// Waits (5 s at most) until process `pid` has exited: gone, or a zombie.
void wait_for_exit(long pid)
{
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (!stat || close == std::string::npos || close + 2 >= text.size() || text[close + 2] == 'Z') {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<engine::Location> location(const Io& io, bool as_json)
{
  auto where = engine::locate(engine::environment_contract(environ));
  if (!where) {
    if (as_json) {
      io.out() << util::dump_json(
                      json{{"ok", false},
                           {"error", {{"type", "daemon_unavailable"}, {"reason", where.error()}}}})
               << "\n";
    }
    io.err() << "sandbox daemon: " << where.error() << "\n";
    return std::nullopt;
  }
  return *where;
}

} // namespace

void register_daemon_commands(CLI::App& app, std::function<int()>& selected, const Io& io)
{
  auto flags = std::make_shared<DaemonFlags>();
  auto* daemon = app.add_subcommand(
      "daemon",
      "The background engine compiles, scans and cache commands run in: status, start, stop, run");
  daemon->require_subcommand(1);

  auto* status =
      daemon->add_subcommand("status", "Is an engine running for this environment, and which");
  status->add_flag("--json", flags->json, "Print one JSON object");
  status->callback([&selected, flags, io] {
    selected = [flags, io] {
      auto where = location(io, flags->json);
      return where ? print_status(io, *flags, *where, ask(*where, "status"), "running:")
                   : kExitFailed;
    };
  });

  auto* stop = daemon->add_subcommand("stop", "Stop the engine (running commands finish first)");
  stop->add_flag("--json", flags->json, "Print one JSON object");
  stop->callback([&selected, flags, io] {
    selected = [flags, io] {
      auto where = location(io, flags->json);
      if (!where) {
        return kExitFailed;
      }
      auto stopped = ask(*where, "stop");
      if (stopped) {
        wait_for_exit(stopped->value("pid", 0L));
      }
      return print_status(io, *flags, *where, stopped, "stopped:");
    };
  });

  auto* start = daemon->add_subcommand("start", "Start the engine now unless one is running");
  start->add_option("--idle-exit", flags->idle_exit,
                    "Seconds without a command before it exits (default 900; 0: never)");
  start->add_flag("--json", flags->json, "Print one JSON object");
  start->callback([&selected, flags, io] {
    selected = [flags, io] {
      auto where = location(io, flags->json);
      if (!where) {
        return kExitFailed;
      }
      if (auto fd = engine::connect_or_start(*where, flags->idle_exit); !fd) {
        io.err() << "sandbox daemon start: " << fd.error() << "\n";
        return kExitFailed;
      }
      return print_status(io, *flags, *where, ask(*where, "status"), "running:");
    };
  });

  auto* run =
      daemon->add_subcommand("run", "Run the engine in the foreground (what start runs detached)");
  run->add_option("--socket", flags->socket,
                  "Socket path (default: this environment's, see daemon status)");
  run->add_option("--idle-exit", flags->idle_exit,
                  "Seconds without a command before it exits (default 900; 0: never)");
  run->add_option("--prestart", flags->prestart, "Warm in_process workers kept ready (default 1)");
  run->callback([&selected, flags, io] {
    selected = [flags, io] {
      engine::ServerSettings settings{flags->socket, flags->idle_exit, flags->prestart};
      if (settings.socket.empty()) {
        auto where = location(io, false);
        if (!where) {
          return kExitFailed;
        }
        settings.socket = where->socket;
      }
      return engine::run_server(settings, io.err());
    };
  });
}

} // namespace sandbox::cli
