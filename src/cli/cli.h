#pragma once

#include <optional>
#include <string>

namespace sandbox::cli {

struct Io;

// The `sandbox` command. Exit status: 0 success, 1 the compile or check failed, 2 bad usage.
int main(int argc, char** argv);

// The same command reading and printing through `io` (the background engine
// runs a client's command with it).
int run_command(int argc, char** argv, const Io& io);

// When the command is one the background engine serves and the engine is not
// turned off (--no-daemon, SANDBOX_NO_DAEMON=1): runs it there and returns its
// exit status. nullopt: run it in this process (a note on stderr says why when
// the engine was wanted but could not serve it), reading `input` as stdin
// when it was read for the engine. Initialises nothing else.
std::optional<int> forward_to_engine(int argc, char** argv, std::optional<std::string>& input);

} // namespace sandbox::cli
