#include "cli/cli.h"

#include "cli/commands.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <iostream>
#include <sstream>
#include <vector>

namespace sandbox::cli {

Io Io::standard()
{
  return Io{&std::cin, &std::cout, &std::cerr, ::isatty(STDOUT_FILENO) == 1};
}

int run_command(int argc, char** argv, const Io& io)
{
  // --no-daemon may appear anywhere before "--"; it only chooses where the
  // command runs, so it is taken out before the arguments are parsed.
  std::vector<char*> args;
  bool past_options = false;
  for (int i = 0; i < argc; ++i) {
    past_options = past_options || std::strcmp(argv[i], "--") == 0;
    if (past_options || std::strcmp(argv[i], "--no-daemon") != 0) {
      args.push_back(argv[i]);
    }
  }
  CLI::App app{"sandbox: compile untrusted Elixir and Erlang code in isolation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(SANDBOX_VERSION));
  bool no_daemon = false;
  app.add_flag("--no-daemon", no_daemon,
               "Run in this process, not in the background engine (also SANDBOX_NO_DAEMON=1)");
  Commands commands(io);
  commands.register_all(app);
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, io.out(), io.err());
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, io.out(), io.err());
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, io.out(), io.err());
  } catch (const CLI::ParseError& e) {
    io.err() << "sandbox: " << e.what() << "\n";
    io.err() << "Run with --help for usage.\n";
    return kExitUsage;
  }
  return commands.run();
}

int main(int argc, char** argv)
{
  std::optional<std::string> input;
  if (auto status = forward_to_engine(argc, argv, input)) {
    return *status;
  }
  // The engine hashes with OpenSSL's built-in provider and needs nothing from
  // the host's openssl.cnf; reading it costs every command a few ms.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  Io io = Io::standard();
  std::istringstream buffered(input.value_or(std::string()));
  if (input) {
    io.input = &buffered;
  }
  return run_command(argc, argv, io);
}

} // namespace sandbox::cli
