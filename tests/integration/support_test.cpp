// Running processes, temp trees and fresh VMs for the integration tests
// (declared in support.h), and tests of these helpers, so a broken helper
// cannot make other tests pass.

#include "support.h"
#include "util/fs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace sandbox::test {

namespace {

std::int64_t now_ms()
{
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t read_vm_hwm_kb(pid_t pid)
{
  std::stringstream status(sandbox::util::read_proc_file(pid, "status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  return 0;
}

std::string find_in_path(const std::string& name)
{
  if (name.find('/') != std::string::npos) {
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  std::stringstream stream(dirs);
  std::string dir;
  while (std::getline(stream, dir, ':')) {
    auto candidate = fs::path(dir) / name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate.string();
    }
  }
  for (const char* fallback : {"/usr/local/bin/", "/usr/bin/", "/bin/"}) {
    auto candidate = std::string(fallback) + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return name;
}

void set_nonblocking(int fd)
{
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Adds the owner's write permission (and directory search) to a tree,
// keeping the other permission bits as they were.
void make_tree_writable(const fs::path& root)
{
  auto add_owner_bits = [](const fs::path& path, bool directory) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && !S_ISLNK(st.st_mode)) {
      ::chmod(path.c_str(), (st.st_mode & 07777) | (directory ? 0700 : 0600));
    }
  };
  add_owner_bits(root, true);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    add_owner_bits(it->path(), it->is_directory(ec) && !it->is_symlink(ec));
  }
}

} // namespace

RunOptions with_stdin(std::string data)
{
  RunOptions options;
  options.stdin_data = std::move(data);
  return options;
}

RunOptions with_timeout(int timeout_ms)
{
  RunOptions options;
  options.timeout_ms = timeout_ms;
  return options;
}

RunOptions with_env(std::map<std::string, std::optional<std::string>> env)
{
  RunOptions options;
  options.env = std::move(env);
  return options;
}

nlohmann::json RunResult::json() const
{
  return nlohmann::json::parse(out, nullptr, false);
}

std::string RunResult::describe() const
{
  std::ostringstream text;
  text << "exit " << exit_code << (signal != 0 ? " signal " + std::to_string(signal) : "")
       << (timed_out ? " (timed out)" : "") << "\n--- stdout:\n"
       << out.substr(0, 8000) << "\n--- stderr:\n"
       << err.substr(0, 8000);
  return text.str();
}

RunResult run_process(const std::vector<std::string>& argv, const RunOptions& options)
{
  RunResult result;
  if (argv.empty()) {
    return result;
  }
  // Everything the child needs is built before fork.
  std::vector<std::string> args = argv;
  args[0] = find_in_path(args[0]);
  std::vector<char*> c_args;
  for (auto& arg : args) {
    c_args.push_back(arg.data());
  }
  c_args.push_back(nullptr);
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string item(*e);
    auto eq = item.find('=');
    if (eq != std::string::npos) {
      env_map[item.substr(0, eq)] = item.substr(eq + 1);
    }
  }
  // Commands run in the test's own process unless a test asks for the
  // background engine (by removing or setting SANDBOX_NO_DAEMON).
  env_map.emplace("SANDBOX_NO_DAEMON", "1");
  for (const auto& [key, value] : options.env) {
    if (value) {
      env_map[key] = *value;
    } else {
      env_map.erase(key);
    }
  }
  std::vector<std::string> env_items;
  for (const auto& [key, value] : env_map) {
    env_items.push_back(key + "=" + value);
  }
  std::vector<char*> c_env;
  for (auto& item : env_items) {
    c_env.push_back(item.data());
  }
  c_env.push_back(nullptr);
  std::string cwd = options.cwd.string();

  int in_pipe[2];
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  auto start = now_ms();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
      ::_exit(126);
    }
    ::execve(c_args[0], c_args.data(), c_env.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  result.pid = pid;
  if (pid < 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.err = std::string("fork: ") + std::strerror(errno);
    return result;
  }
  ::signal(SIGPIPE, SIG_IGN);
  set_nonblocking(in_pipe[1]);
  set_nonblocking(out_pipe[0]);
  set_nonblocking(err_pipe[0]);
  int in_fd = in_pipe[1];
  std::size_t written = 0;
  if (options.stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  char buffer[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    result.peak_rss_kb = std::max(result.peak_rss_kb, read_vm_hwm_kb(pid));
    if (!result.timed_out && now_ms() - start > options.timeout_ms) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    int ready = ::poll(fds, 3, 20);
    if (ready < 0 && errno != EINTR) {
      break;
    }
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      if (fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        ::close(fd);
        fd = -1;
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t n =
          ::write(in_fd, options.stdin_data.data() + written, options.stdin_data.size() - written);
      if (n > 0) {
        written += static_cast<std::size_t>(n);
      }
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == options.stdin_data.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) {
    ::close(in_fd);
  }
  int status = 0;
  while (true) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) {
      break;
    }
    result.peak_rss_kb = std::max(result.peak_rss_kb, read_vm_hwm_kb(pid));
    if (!result.timed_out && now_ms() - start > options.timeout_ms) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    ::usleep(10'000);
  }
  result.wall_ms = now_ms() - start;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

fs::path sandbox_binary()
{
  return SANDBOX_BINARY;
}

fs::path source_dir()
{
  return SANDBOX_SOURCE_DIR;
}

fs::path example_dir(const std::string& name)
{
  return source_dir() / "examples" / name;
}

std::optional<fs::path> corpora_root()
{
  fs::path dir = source_dir().parent_path() / "shared" / "corpora";
  if (const char* env = std::getenv("SANDBOX_CORPORA"); env != nullptr && *env != '\0') {
    dir = env;
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return std::nullopt;
  }
  return dir;
}

std::optional<fs::path> elixir_1_18()
{
  std::error_code ec;
  if (const char* env = std::getenv("SANDBOX_ELIXIR_1_18"); env != nullptr && *env != '\0') {
    return fs::is_regular_file(fs::path(env) / "bin" / "elixir", ec) ? std::optional<fs::path>(env)
                                                                     : std::nullopt;
  }
  static const std::optional<fs::path> found = []() -> std::optional<fs::path> {
    auto run = run_process({(source_dir() / "scripts" / "build-toolchain").string(), "--print"});
    auto text = run.out.substr(0, run.out.find('\n'));
    std::error_code ec2;
    if (run.exit_code != 0 || text.empty() || !fs::is_regular_file(fs::path(text) / "bin" / "elixir", ec2)) {
      return std::nullopt;
    }
    return fs::path(text);
  }();
  return found;
}

std::string elixir_1_18_absent_reason()
{
  return "Elixir 1.18.4 is not built here: run scripts/build-toolchain (it needs "
         "../shared/toolchains/elixir-1.18.4.tar.gz), or set SANDBOX_ELIXIR_1_18 to a built prefix";
}

fs::path corpus_dir(const std::string& name)
{
  auto root = corpora_root();
  if (!root) {
    throw std::runtime_error("the corpora are absent (a test is missing SKIP_WITHOUT_CORPORA)");
  }
  return *root / name;
}

TempTree::TempTree(const std::string& prefix, const fs::path& parent)
{
  std::string pattern = (parent / (prefix + "XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  m_path = pattern;
}

TempTree::~TempTree()
{
  std::error_code ec;
  fs::remove_all(m_path, ec);
  if (ec) {
    make_tree_writable(m_path);
    fs::remove_all(m_path, ec);
  }
}

fs::path TempTree::copy_in(const fs::path& source, const std::string& name) const
{
  auto target = m_path / name;
  fs::create_directories(target.parent_path());
  fs::copy(source, target, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  // The corpora are read-only; the copies must be editable and removable.
  make_tree_writable(target);
  return target;
}

fs::path TempTree::write(const fs::path& relative, const std::string& text) const
{
  auto target = m_path / relative;
  fs::create_directories(target.parent_path());
  std::ofstream out(target, std::ios::binary | std::ios::trunc);
  out << text;
  return target;
}

RunResult run_elixir(const fs::path& code_path, const std::string& code)
{
  return run_process({"elixir", "-pa", code_path.string(), "-e", code}, with_timeout(60'000));
}

RunResult run_erl(const fs::path& code_path, const std::string& code)
{
  return run_process({"erl", "-noshell", "-pa", code_path.string(), "-eval", code},
                     with_timeout(60'000));
}

std::vector<pid_t> processes_with_argument(const std::string& marker)
{
  std::vector<pid_t> found;
  for (int pid : sandbox::util::list_pids()) {
    // The process may be gone by now: an empty cmdline, never an exception.
    std::stringstream args(sandbox::util::read_proc_file(pid, "cmdline"));
    std::string arg;
    while (std::getline(args, arg, '\0')) {
      if (arg == marker) {
        found.push_back(static_cast<pid_t>(pid));
        break;
      }
    }
  }
  return found;
}

// --- the helpers' own tests -------------------------------------------------

TEST(Support, RunProcessCapturesStreamsStatusAndStdin)
{
  auto run = run_process({"/bin/sh", "-c", "read line; echo out:$line; echo err >&2; exit 3"},
                         with_stdin("hello\n"));
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_EQ(run.out, "out:hello\n");
  EXPECT_EQ(run.err, "err\n");
  EXPECT_FALSE(run.timed_out);
}

TEST(Support, RunProcessPassesArgumentsWithoutAShell)
{
  auto run = run_process({"/bin/echo", "$HOME; rm -rf /nonexistent", "`id`"});
  EXPECT_EQ(run.out, "$HOME; rm -rf /nonexistent `id`\n");
}

TEST(Support, RunProcessEnvironmentOverridesAndRemovals)
{
  ::setenv("SANDBOX_SUPPORT_REMOVED", "1", 1);
  auto run = run_process({"/usr/bin/env"}, with_env({{"SANDBOX_SUPPORT_ADDED", "yes"},
                                                     {"SANDBOX_SUPPORT_REMOVED", std::nullopt}}));
  ::unsetenv("SANDBOX_SUPPORT_REMOVED");
  EXPECT_NE(run.out.find("SANDBOX_SUPPORT_ADDED=yes\n"), std::string::npos);
  EXPECT_EQ(run.out.find("SANDBOX_SUPPORT_REMOVED"), std::string::npos);
}

TEST(Support, RunProcessKillsOnTimeout)
{
  auto run = run_process({"/bin/sleep", "30"}, with_timeout(300));
  EXPECT_TRUE(run.timed_out);
  EXPECT_EQ(run.signal, SIGKILL);
  EXPECT_LT(run.wall_ms, 5000);
}

TEST(Support, TempTreeCopiesAndRemoves)
{
  fs::path kept;
  {
    TempTree tree("support-test-");
    kept = tree.path();
    auto copy = tree.copy_in(example_dir("plain_lib"), "copy");
    EXPECT_TRUE(fs::is_regular_file(copy / "lib" / "shapes.ex"));
    EXPECT_EQ(read_text(copy / "lib" / "shapes.ex"),
              read_text(example_dir("plain_lib") / "lib" / "shapes.ex"));
    ::chmod(copy.c_str(), 0500);
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(Support, ProcessesWithArgumentFindsAMarker)
{
  pid_t child = ::fork();
  if (child == 0) {
    ::execl("/bin/sleep", "sleep", "876543", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::usleep(200'000);
  auto found = processes_with_argument("876543");
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_NE(std::find(found.begin(), found.end(), child), found.end());
  EXPECT_TRUE(processes_with_argument("876543").empty());
}

TEST(Support, ElixirRunsInAFreshVm)
{
  TempTree tree("support-test-");
  auto run = run_elixir(tree.path(), "IO.puts(1 + 2)");
  EXPECT_EQ(run.exit_code, 0) << run.describe();
  EXPECT_EQ(run.out, "3\n");
}

} // namespace sandbox::test
