#pragma once
// Helpers for the integration tests, which drive the real build/sandbox
// command on real Elixir and Erlang code.
//
// The definitions live in support_test.cpp and support_checks_test.cpp (the
// build collects *_test.cpp files), which also test the helpers themselves.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::test {

namespace fs = std::filesystem;

struct RunOptions {
  std::string stdin_data;
  // Added to (or, with nullopt, removed from) this process's environment.
  std::map<std::string, std::optional<std::string>> env;
  fs::path cwd;
  int timeout_ms = 180'000;
};

// Shorthands for the usual single-field options.
RunOptions with_stdin(std::string data);
RunOptions with_timeout(int timeout_ms);
RunOptions with_env(std::map<std::string, std::optional<std::string>> env);

struct RunResult {
  int exit_code = -1; // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false; // killed by run_process after RunOptions::timeout_ms
  std::string out;
  std::string err;
  std::int64_t wall_ms = 0;
  std::int64_t peak_rss_kb = 0; // VmHWM of the process itself (not its children)
  pid_t pid = 0;                 // the process that ran (its job cgroups carry it)

  // stdout as one JSON object; a discarded value when it is not JSON.
  [[nodiscard]] nlohmann::json json() const;
  // For assertion messages.
  [[nodiscard]] std::string describe() const;
};

// fork/exec of argv (argv[0] an absolute path or a name looked up in PATH);
// no shell is involved.
RunResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

fs::path sandbox_binary();
fs::path source_dir();
fs::path example_dir(const std::string& name);
// The shared corpora (real Elixir libraries): $SANDBOX_CORPORA, else
// ../shared/corpora beside the checkout; nullopt when neither exists.
std::optional<fs::path> corpora_root();
// corpora_root() / name; only after SKIP_WITHOUT_CORPORA().
fs::path corpus_dir(const std::string& name);

// A test that needs the corpora skips, saying where it looked, when they are absent.
#define SKIP_WITHOUT_CORPORA()                                                                   \
  do {                                                                                           \
    if (!::sandbox::test::corpora_root()) {                                                      \
      GTEST_SKIP() << "the corpora are absent: put shared/ beside the checkout or set "          \
                      "SANDBOX_CORPORA";                                                         \
    }                                                                                            \
  } while (false)

// The Elixir 1.18.4 toolchain scripts/build-toolchain builds: $SANDBOX_ELIXIR_1_18
// when set, else the script's cache directory when the build completed.
std::optional<fs::path> elixir_1_18();
// Why elixir_1_18() is absent, for a skip message.
std::string elixir_1_18_absent_reason();

#define SKIP_WITHOUT_ELIXIR_1_18()                                                               \
  do {                                                                                           \
    if (!::sandbox::test::elixir_1_18()) {                                                       \
      GTEST_SKIP() << ::sandbox::test::elixir_1_18_absent_reason();                              \
    }                                                                                            \
  } while (false)

// A directory made with mkdtemp, removed with everything in it at the end.
class TempTree {
public:
  explicit TempTree(const std::string& prefix = "sandbox-it-", const fs::path& parent = "/tmp");
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  ~TempTree();

  [[nodiscard]] const fs::path& path() const { return m_path; }
  // Copies `source` (a directory, recursively, symlinks as symlinks) to
  // path()/name and returns the copy's path.
  fs::path copy_in(const fs::path& source, const std::string& name) const;
  // Writes a file (creating parent directories) and returns its path.
  fs::path write(const fs::path& relative, const std::string& text) const;

private:
  fs::path m_path;
};

// `elixir -pa DIR -e CODE` in a fresh VM.
RunResult run_elixir(const fs::path& code_path, const std::string& code);
// `erl -noshell -pa DIR -eval CODE` in a fresh VM; CODE should end in halt().
RunResult run_erl(const fs::path& code_path, const std::string& code);

// Processes whose command line contains `marker` as one of its arguments.
std::vector<pid_t> processes_with_argument(const std::string& marker);

struct TreeItem {
  char type = '?'; // f, d, l (symlink), o (other)
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  unsigned mode = 0;
  std::string link_target;
  friend bool operator==(const TreeItem&, const TreeItem&) = default;
};
// Relative path -> lstat facts, for before/after comparisons.
std::map<std::string, TreeItem> snapshot_tree(const fs::path& root);
// Human-readable differences between two snapshots ("" when equal).
std::string diff_trees(const std::map<std::string, TreeItem>& before,
                       const std::map<std::string, TreeItem>& after);

// Entries of `dir` whose name starts with `prefix`.
std::vector<fs::path> entries_with_prefix(const fs::path& dir, const std::string& prefix);

std::string read_text(const fs::path& path);

// Every test gets its own scratch directory; the sandbox command it runs gets
// SANDBOX_STATE_DIR and TMPDIR inside it, so job temp dirs and the engine key
// never leave the test and tests can run in parallel.
class SandboxTest : public ::testing::Test {
protected:
  SandboxTest();

  [[nodiscard]] const fs::path& scratch() const { return m_scratch.path(); }
  [[nodiscard]] fs::path state_dir() const { return scratch() / "state"; }
  [[nodiscard]] fs::path job_root() const { return scratch() / "tmp"; }

  // Copies an example or a corpus into the scratch directory.
  fs::path copy_example(const std::string& name) const;
  fs::path copy_corpus(const std::string& name) const;
  // A sandbox with the given files (relative path -> content).
  fs::path make_sandbox(const std::string& name,
                        const std::map<std::string, std::string>& files) const;

  // build/sandbox ARGS with the per-test environment.
  RunResult sandbox(const std::vector<std::string>& args, RunOptions options = {}) const;
  // build/sandbox compile PATH ARGS --json.
  RunResult compile(const fs::path& path, const std::vector<std::string>& args = {},
                    RunOptions options = {}) const;

  // The commands sandbox() ran: their job cgroups are named after them.
  [[nodiscard]] const std::vector<pid_t>& ran() const { return m_ran; }

private:
  TempTree m_scratch;
  mutable std::vector<pid_t> m_ran;
};

// Checks the DESIGN.md success object; adds failures for what is wrong.
void expect_success_contract(const nlohmann::json& result);
// The `error` object of a failure result with the given type.
::testing::AssertionResult is_error(const RunResult& run, const std::string& type,
                                    int exit_status = 1);

// beam_files as paths.
std::vector<fs::path> beam_paths(const nlohmann::json& result);
// File names of beam_files.
std::vector<std::string> beam_names(const nlohmann::json& result);

// The ebin directory of a success result (temp_dir/ebin).
fs::path result_ebin(const nlohmann::json& result);
// Module -> beam_lib:md5 (hex) of every BEAM in `dir`: what a clean build is
// compared on.
std::map<std::string, std::string> beam_md5s(const fs::path& dir);

} // namespace sandbox::test
