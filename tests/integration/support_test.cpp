// The integration-test helpers (declared in support.h) and tests of the
// helpers themselves, so a broken helper cannot make other tests pass.

#include "support.h"

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
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
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

fs::path corpus_dir(const std::string& name)
{
  if (const char* dir = std::getenv("SANDBOX_CORPORA"); dir != nullptr && *dir != '\0') {
    return fs::path(dir) / name;
  }
  // shared/ sits beside the checkout.
  auto beside = source_dir().parent_path() / "shared" / "corpora";
  std::error_code ec;
  if (fs::is_directory(beside, ec)) {
    return beside / name;
  }
  return fs::path("/work/shared/corpora") / name;
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
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::stringstream args(cmdline);
    std::string arg;
    while (std::getline(args, arg, '\0')) {
      if (arg == marker) {
        found.push_back(static_cast<pid_t>(std::stol(name)));
        break;
      }
    }
  }
  return found;
}

std::map<std::string, TreeItem> snapshot_tree(const fs::path& root)
{
  std::map<std::string, TreeItem> items;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) {
      continue;
    }
    TreeItem item;
    item.type = S_ISREG(st.st_mode)   ? 'f'
                : S_ISDIR(st.st_mode) ? 'd'
                : S_ISLNK(st.st_mode) ? 'l'
                                      : 'o';
    item.size = S_ISDIR(st.st_mode) ? 0 : static_cast<std::uint64_t>(st.st_size);
    item.mtime_ns =
        S_ISDIR(st.st_mode)
            ? 0
            : static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    item.mode = st.st_mode & 07777;
    if (S_ISLNK(st.st_mode)) {
      item.link_target = fs::read_symlink(it->path(), ec).string();
      ec.clear();
    }
    items[it->path().lexically_relative(root).string()] = item;
  }
  return items;
}

std::string diff_trees(const std::map<std::string, TreeItem>& before,
                       const std::map<std::string, TreeItem>& after)
{
  std::string out;
  for (const auto& [path, item] : before) {
    auto it = after.find(path);
    if (it == after.end()) {
      out += "removed: " + path + "\n";
    } else if (!(it->second == item)) {
      out += "changed: " + path + "\n";
    }
  }
  for (const auto& [path, item] : after) {
    if (!before.contains(path)) {
      out += "added: " + path + "\n";
    }
  }
  return out;
}

std::vector<fs::path> entries_with_prefix(const fs::path& dir, const std::string& prefix)
{
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) {
      out.push_back(entry.path());
    }
  }
  return out;
}

std::string read_text(const fs::path& path)
{
  std::ifstream in(path, std::ios::binary);
  return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

SandboxTest::SandboxTest()
{
  fs::create_directories(state_dir());
  fs::create_directories(job_root());
}

fs::path SandboxTest::copy_example(const std::string& name) const
{
  return m_scratch.copy_in(example_dir(name), "src/" + name);
}

fs::path SandboxTest::copy_corpus(const std::string& name) const
{
  return m_scratch.copy_in(corpus_dir(name), "src/" + name);
}

fs::path SandboxTest::make_sandbox(const std::string& name,
                                   const std::map<std::string, std::string>& files) const
{
  auto root = scratch() / "src" / name;
  fs::create_directories(root);
  for (const auto& [relative, text] : files) {
    m_scratch.write(fs::path("src") / name / relative, text);
  }
  return root;
}

RunResult SandboxTest::sandbox(const std::vector<std::string>& args, RunOptions options) const
{
  std::vector<std::string> argv = {sandbox_binary().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  options.env.try_emplace("SANDBOX_STATE_DIR", state_dir().string());
  options.env.try_emplace("TMPDIR", job_root().string());
  return run_process(argv, options);
}

RunResult SandboxTest::compile(const fs::path& path, const std::vector<std::string>& args,
                               RunOptions options) const
{
  std::vector<std::string> argv = {"compile", path.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.emplace_back("--json");
  return sandbox(argv, std::move(options));
}

void expect_success_contract(const nlohmann::json& result)
{
  ASSERT_TRUE(result.is_object()) << result;
  EXPECT_EQ(result.value("ok", false), true) << result.dump(2);
  auto expect_type = [&](const char* key, auto predicate, const char* what) {
    ASSERT_TRUE(result.contains(key)) << "missing key " << key;
    EXPECT_TRUE(predicate(result[key]))
        << key << " should be " << what << ", is " << result[key].dump();
  };
  expect_type(
      "beam_files", [](const auto& v) { return v.is_array(); }, "an array");
  expect_type(
      "app_file", [](const auto& v) { return v.is_null() || v.is_string(); }, "null or a string");
  expect_type(
      "compilation_time", [](const auto& v) { return v.is_number_integer(); }, "an integer");
  expect_type(
      "temp_dir", [](const auto& v) { return v.is_string(); }, "a string");
  expect_type(
      "output", [](const auto& v) { return v.is_string(); }, "a string");
  expect_type(
      "warnings", [](const auto& v) { return v.is_array(); }, "an array");
  expect_type(
      "incremental", [](const auto& v) { return v.is_boolean(); }, "a boolean");
  expect_type(
      "cache_hit", [](const auto& v) { return v.is_boolean(); }, "a boolean");
  expect_type(
      "changed_files", [](const auto& v) { return v.is_array(); }, "an array");
  expect_type(
      "compilation_strategy", [](const auto& v) { return v.is_string(); }, "a string");
  expect_type(
      "resource_usage", [](const auto& v) { return v.is_object(); }, "an object");
  expect_type(
      "isolation", [](const auto& v) { return v.is_object(); }, "an object");
  expect_type(
      "modules", [](const auto& v) { return v.is_array(); }, "an array");
  for (const auto& beam : result["beam_files"]) {
    EXPECT_TRUE(beam.is_string()) << beam;
  }
  for (const auto& module : result["modules"]) {
    EXPECT_TRUE(module.is_string()) << module;
  }
  EXPECT_EQ(result["modules"].size(), result["beam_files"].size());
  EXPECT_GE(result["compilation_time"].get<std::int64_t>(), 0);
  const auto& usage = result["resource_usage"];
  for (const char* key : {"peak_memory_bytes", "cpu_time_ms", "wall_time_ms"}) {
    ASSERT_TRUE(usage.contains(key)) << "resource_usage lacks " << key;
    EXPECT_TRUE(usage[key].is_number_integer()) << key << ": " << usage[key];
    EXPECT_GE(usage[key].get<std::int64_t>(), 0) << key;
  }
  EXPECT_TRUE(result["isolation"].contains("mode")) << result["isolation"];
  for (const auto& warning : result["warnings"]) {
    ASSERT_TRUE(warning.is_object()) << warning;
    EXPECT_TRUE(warning["file"].is_string()) << warning;
    EXPECT_TRUE(warning["line"].is_null() || warning["line"].is_number_integer()) << warning;
    EXPECT_TRUE(warning["message"].is_string()) << warning;
  }
  std::string strategy = result["compilation_strategy"];
  EXPECT_TRUE(strategy == "full" || strategy == "incremental" || strategy == "cache_hit")
      << strategy;
  // Every BEAM is a real file below temp_dir.
  fs::path temp = result["temp_dir"].get<std::string>();
  EXPECT_TRUE(temp.is_absolute()) << temp;
  for (const auto& beam : result["beam_files"]) {
    fs::path file = beam.get<std::string>();
    EXPECT_TRUE(file.is_absolute()) << file;
    EXPECT_EQ(file.extension(), ".beam") << file;
    auto relative = file.lexically_relative(temp);
    EXPECT_FALSE(relative.empty() || *relative.begin() == "..") << file << " is not under " << temp;
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(file))) << file;
  }
}

::testing::AssertionResult is_error(const RunResult& run, const std::string& type, int exit_status)
{
  if (run.timed_out) {
    return ::testing::AssertionFailure() << "timed out\n" << run.describe();
  }
  if (run.exit_code != exit_status) {
    return ::testing::AssertionFailure()
           << "exit status " << run.exit_code << ", expected " << exit_status << "\n"
           << run.describe();
  }
  auto json = run.json();
  if (!json.is_object() || json.value("ok", true) || !json.contains("error") ||
      !json["error"].is_object()) {
    return ::testing::AssertionFailure() << "not a failure object\n" << run.describe();
  }
  if (json["error"].value("type", "") != type) {
    return ::testing::AssertionFailure()
           << "error type " << json["error"].value("type", "") << ", expected " << type << "\n"
           << run.describe();
  }
  return ::testing::AssertionSuccess();
}

std::vector<fs::path> beam_paths(const nlohmann::json& result)
{
  std::vector<fs::path> out;
  for (const auto& beam : result.value("beam_files", nlohmann::json::array())) {
    out.emplace_back(beam.get<std::string>());
  }
  return out;
}

std::vector<std::string> beam_names(const nlohmann::json& result)
{
  std::vector<std::string> out;
  for (const auto& path : beam_paths(result)) {
    out.push_back(path.filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
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

TEST(Support, SnapshotSeesAddedChangedAndRemovedFiles)
{
  TempTree tree("support-test-");
  tree.write("a.txt", "a");
  tree.write("d/b.txt", "b");
  auto before = snapshot_tree(tree.path());
  EXPECT_EQ(diff_trees(before, snapshot_tree(tree.path())), "");
  tree.write("a.txt", "changed");
  fs::remove(tree.path() / "d" / "b.txt");
  fs::create_symlink("/etc/passwd", tree.path() / "link");
  auto diff = diff_trees(before, snapshot_tree(tree.path()));
  EXPECT_NE(diff.find("changed: a.txt"), std::string::npos) << diff;
  EXPECT_NE(diff.find("removed: d/b.txt"), std::string::npos) << diff;
  EXPECT_NE(diff.find("added: link"), std::string::npos) << diff;
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
