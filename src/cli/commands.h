#pragma once
// The `sandbox` subcommands: each collects its flags, calls the compiler
// facade, and prints a human report or one JSON object (--json).

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// Where a command reads and prints: the process's own streams, or, in the
// background engine, a client's stdin and buffers sent back to it.
struct Io {
  std::istream* input = nullptr;
  std::ostream* output = nullptr;
  std::ostream* error = nullptr;
  bool out_terminal = false; // stdout is a terminal (batch progress)

  [[nodiscard]] std::istream& in() const { return *input; }
  [[nodiscard]] std::ostream& out() const { return *output; }
  [[nodiscard]] std::ostream& err() const { return *error; }
  // std::cin, std::cout and std::cerr.
  static Io standard();
};

// Flags shared by compile and compile-file, gathered as the specification's
// option names and handed to core::parse_compile_options.
struct CompileFlags {
  std::optional<std::string> compiler, timeout, memory_limit, cpu_limit, max_processes, temp_dir,
    output_limit, isolation, scan_scope, package_mirror, worker_reuse,
    toolchain;
  bool no_validate_beams = false, incremental = false, force_recompile = false, no_cache = false,
       skip_cache = false, no_dependency_analysis = false, no_security_scan = false,
       in_process = false;
  std::vector<std::string> env, restricted_modules, allowed_operations, source_files;

  void add_to(CLI::App& command);
  // The option object; a malformed --env is reported as a usage error.
  [[nodiscard]] std::optional<nlohmann::json> to_options(std::string& error) const;
};

class Commands {
public:
  explicit Commands(Io io) : m_io(io) {}
  void register_all(CLI::App& app);
  // Runs the subcommand that was parsed; returns the exit status.
  int run();

private:
  void register_scan(CLI::App& app); // scan_command.cpp

  Io m_io;
  std::function<int()> m_selected;
  std::optional<std::string> m_scan_depth;
  bool m_json = false;
  std::string m_cluster;
  std::string m_cluster_namespace = "sandbox";
  bool m_prune_packages = false;
  std::int64_t m_prune_age = 0;
  CompileFlags m_flags;
  std::vector<std::string> m_paths;
  std::vector<std::string> m_changed;
  std::string m_filename;
  std::string m_out;
  std::size_t m_batch_jobs = 2;
};

} // namespace sandbox::cli
