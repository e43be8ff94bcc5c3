#pragma once
// Shared by the benchmarks: run a command and time it, copy a tree, medians.
// Each benchmark prints its headline figures as `BENCH <name> <value> <unit>`.

#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace bench {

namespace fs = std::filesystem;

struct Run {
  int status = -1;
  double seconds = 0;
};

// In a forked child: `vars` ("NAME=value") into the environment.
inline void put_env(const std::vector<std::string>& vars)
{
  for (const auto& var : vars) {
    ::putenv(const_cast<char*>(var.c_str()));
  }
}

// In a forked child: runs `argv` (PATH searched), or exits 127.
[[noreturn]] inline void exec_argv(const std::vector<std::string>& argv)
{
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  ::_exit(127);
}

// Runs argv (no shell) in cwd with extra environment variables, output discarded.
inline Run run(const std::vector<std::string>& argv, const fs::path& cwd,
               const std::vector<std::string>& extra_env = {})
{
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::chdir(cwd.c_str());
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    put_env(extra_env);
    exec_argv(argv);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Run r;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// $BENCH_TOOLCHAIN: an Elixir installation prefix to measure (the engine
// compiles with it, and the baselines run its elixirc and mix); unset: the
// system's toolchain.
inline std::string toolchain()
{
  const char* prefix = std::getenv("BENCH_TOOLCHAIN");
  return prefix != nullptr ? prefix : "";
}

// A tool of the measured toolchain: its path, or the name for PATH lookup.
inline std::string tool(const std::string& name)
{
  return toolchain().empty() ? name : toolchain() + "/bin/" + name;
}

// The environment the baselines need for that toolchain (its bin first in
// PATH, for mix's `#!/usr/bin/env elixir`), plus `extra`.
inline std::vector<std::string> tool_env(std::vector<std::string> extra = {})
{
  if (!toolchain().empty()) {
    const char* path = std::getenv("PATH");
    extra.push_back("PATH=" + toolchain() + "/bin:" + (path != nullptr ? path : "/usr/bin:/bin"));
  }
  return extra;
}

// "system" or the measured prefix, for the report.
inline std::string toolchain_label()
{
  return toolchain().empty() ? std::string("system") : toolchain();
}

// Where a one-shot command's engine, state and temp dirs are.
struct EngineEnv {
  std::string runtime, state, tmp;
};

// argv in `cwd` with that environment plus `extra` ("K=V"), stdin from
// `input` (or /dev/null), output discarded; seconds, the exit status in
// `status` when given.
inline double timed_command(const std::vector<std::string>& argv, const EngineEnv& env,
                            const fs::path& cwd, const std::vector<std::string>& extra = {},
                            const std::string& input = "", int* status = nullptr)
{
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int in = ::open(input.empty() ? "/dev/null" : input.c_str(), O_RDONLY);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(in, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (::chdir(cwd.c_str()) != 0) {
      ::_exit(126);
    }
    ::setenv("XDG_RUNTIME_DIR", env.runtime.c_str(), 1);
    ::setenv("SANDBOX_STATE_DIR", env.state.c_str(), 1);
    ::setenv("TMPDIR", env.tmp.c_str(), 1);
    ::unsetenv("SANDBOX_NO_DAEMON");
    put_env(extra);
    exec_argv(argv);
  }
  int code = 0;
  ::waitpid(pid, &code, 0);
  if (status != nullptr) {
    *status = WIFEXITED(code) ? WEXITSTATUS(code) : 128;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline double median(std::vector<double> values)
{
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

inline fs::path make_temp(const std::string& prefix)
{
  std::string pattern = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return pattern;
}

inline std::vector<std::string> sources(const fs::path& root, const std::string& dir,
                                        const std::string& ext)
{
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ext) {
      out.push_back(entry.path().lexically_relative(root).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The shared corpora: $SANDBOX_CORPORA, else ../shared/corpora beside the
// checkout. A benchmark cannot measure without them: it says so and exits 2.
inline fs::path corpora_dir()
{
  fs::path dir = fs::path(SANDBOX_SOURCE_DIR).parent_path() / "shared" / "corpora";
  if (const char* env = std::getenv("SANDBOX_CORPORA"); env != nullptr && *env != '\0') {
    dir = env;
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    std::fprintf(stderr,
                 "the corpora are not at %s: put shared/ beside the checkout or set "
                 "SANDBOX_CORPORA to a folder holding decimal, mime and nimble_options\n",
                 dir.c_str());
    std::exit(2);
  }
  return dir;
}

} // namespace bench
