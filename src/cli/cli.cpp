#include "cli/cli.h"

#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

namespace sandbox::cli {

int main(int argc, char** argv)
{
  CLI::App app{"sandbox: compile untrusted Elixir and Erlang code in isolation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(SANDBOX_VERSION));
  Commands commands;
  commands.register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "sandbox: " << e.what() << "\n";
    std::cerr << "Run with --help for usage.\n";
    return kExitUsage;
  }
  return commands.run();
}

} // namespace sandbox::cli
