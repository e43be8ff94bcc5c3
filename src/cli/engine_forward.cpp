// The lean path of a forwarded command: look at argv, connect (starting the
// engine when needed), send, print what comes back. No argument parser, JSON,
// crypto or compiler state is touched; the engine parses the arguments and
// answers byte for byte what the command would have printed here.

#include "cli/cli.h"
#include "cli/engine_client.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sandbox::cli {

namespace {

using namespace std::string_view_literals;

bool engine_disabled(int argc, char** argv)
{
  const char* off = std::getenv(engine::kNoDaemonVariable);
  if (off != nullptr && *off != '\0' && std::strcmp(off, "0") != 0) {
    return true;
  }
  for (int i = 1; i < argc && argv[i] != "--"sv; ++i) {
    if (argv[i] == "--no-daemon"sv) {
      return true;
    }
  }
  return false;
}

// The subcommand, when it is one the engine serves and no help or version is asked for.
std::string_view served_command(int argc, char** argv)
{
  static constexpr std::string_view kServed[] = {"compile",     "compile-file", "compile-string",
                                                 "incremental", "scan",         "cache"};
  std::string_view command;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      break;
    }
    if (arg == "-h" || arg == "--help" || arg == "--help-all" || arg == "--version") {
      return {};
    }
    if (command.empty() && !arg.starts_with('-')) {
      command = arg;
    }
  }
  for (auto served : kServed) {
    if (command == served) {
      return command;
    }
  }
  return {};
}

std::string read_all(int fd)
{
  std::string data;
  char buffer[65536];
  for (;;) {
    auto n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return data;
    }
    data.append(buffer, static_cast<std::size_t>(n));
  }
}

void note(const std::string& why)
{
  std::string line = "sandbox: " + why + "; running in this process\n";
  engine::write_all(STDERR_FILENO, line);
}

} // namespace

std::optional<int> forward_to_engine(int argc, char** argv, std::optional<std::string>& input)
{
  if (engine_disabled(argc, argv)) {
    return std::nullopt;
  }
  auto command = served_command(argc, argv);
  if (command.empty()) {
    return std::nullopt;
  }
  auto request = engine::make_request("run");
  request.argv.assign(argv, argv + argc);
  if (command == "compile-string") {
    input = read_all(STDIN_FILENO);
    request.input = input;
  }
  auto where = engine::locate(request.environment);
  if (!where) {
    note("no background engine (" + where.error() + ")");
    return std::nullopt;
  }
  // A second attempt covers an engine that exited (idle) as it was reached,
  // and one of another version that stopped when told.
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto fd = engine::connect_or_start(*where, engine::idle_exit_from_environment());
    if (!fd) {
      why = "the background engine could not be started: " + fd.error();
      break;
    }
    auto answer = engine::exchange(fd->get(), request);
    if (answer.exit_status) {
      engine::write_all(STDERR_FILENO, answer.err);
      engine::write_all(STDOUT_FILENO, answer.out);
      return answer.exit_status;
    }
    if (answer.refused) {
      why = "the background engine cannot serve this command: " + *answer.refused;
      break;
    }
    if (answer.accepted) {
      why = "the background engine stopped during the command";
      break;
    }
    why = answer.other_version
              ? "the background engine is another version (" + *answer.other_version + ")"
              : "the background engine closed the connection";
  }
  note(why);
  return std::nullopt;
}

} // namespace sandbox::cli
