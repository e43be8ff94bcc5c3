#include "worker/worker.h"

#include "backends/toolchain.h"
#include "util/hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace sandbox::worker {

namespace {

using Clock = std::chrono::steady_clock;

// Elixir's applications (elixir, logger, ...) as `-pa` directories, found
// from where the `elixir` script really lives (…/lib/elixir/bin/elixir).
std::vector<std::string> elixir_code_path(const fs::path& elixir_script)
{
  std::error_code ec;
  auto real = fs::canonical(elixir_script, ec);
  std::vector<std::string> dirs;
  if (ec) {
    return dirs;
  }
  auto lib = real.parent_path().parent_path() / "lib";
  for (const char* app : {"elixir", "logger", "eex"}) {
    auto ebin = lib / app / "ebin";
    if (fs::is_directory(ebin, ec)) {
      dirs.push_back(ebin.string());
    }
  }
  return dirs;
}

std::expected<std::pair<util::Fd, util::Fd>, std::string> make_pipe()
{
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return std::unexpected(util::errno_message("pipe"));
  }
  return std::pair{util::Fd(fds[0]), util::Fd(fds[1])};
}

} // namespace

WorkerEbin locate_worker_ebin()
{
  std::error_code ec;
  auto has_program = [&](const fs::path& dir) { return fs::is_regular_file(dir / "sandbox_worker.beam", ec); };
  // An explicit override is taken as given, present or not, so a wrong value
  // is reported rather than silently replaced.
  if (const char* env = std::getenv("SANDBOX_WORKER_EBIN"); env != nullptr && *env != '\0') {
    fs::path dir(env);
    return {dir, "environment", has_program(dir)};
  }
  // /proc/self/exe is the binary with symlinks resolved, so a /usr/bin link
  // to the real binary still finds the files installed beside it.
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto installed = (self.parent_path() / SANDBOX_INSTALL_EBIN_RELATIVE).lexically_normal();
    if (has_program(installed)) {
      return {installed, "install", true};
    }
  }
  fs::path built(SANDBOX_WORKER_EBIN);
  return {built, "build", has_program(built)};
}

fs::path worker_ebin()
{
  return locate_worker_ebin().path;
}

namespace {

// The worker's source: beside an installed program (<ebin>/../src), else the
// source tree this engine was built from.
fs::path worker_source(const WorkerEbin& ebin)
{
  std::error_code ec;
  auto installed = ebin.path.parent_path() / "src" / "sandbox_worker.erl";
  if (fs::is_regular_file(installed, ec)) {
    return installed;
  }
  return fs::path(SANDBOX_WORKER_SOURCE);
}

} // namespace

std::expected<fs::path, core::Error> worker_ebin_for(const backends::Toolchain& toolchain)
{
  auto ebin = locate_worker_ebin();
  if (!ebin.present) {
    return std::unexpected(core::JailSetupFailed{
      "worker", "the worker program is missing: " + (ebin.path / "sandbox_worker.beam").string() +
                  " (found by " + ebin.found_by + ")"});
  }
  const auto& system = backends::system_toolchain();
  if (toolchain.system || (system && (*system)->erlang_root == toolchain.erlang_root)) {
    return ebin.path;
  }
  // Another Erlang/OTP: the program is compiled by that OTP's erlc, once per
  // version of its source (a program compiled from an older source may lack
  // requests this engine sends).
  auto source = worker_source(ebin);
  auto source_text = util::read_file(source, 4u << 20);
  auto dir = util::engine_state_dir() / "workers" /
             util::sha256_hex(fmt::format("{}\n{}\n{}\n{}", toolchain.otp_version,
                                          toolchain.erlang_root.string(), toolchain.identity,
                                          source_text ? util::sha256_hex(*source_text) : ""))
               .substr(0, 32);
  std::error_code ec;
  if (fs::is_regular_file(dir / "sandbox_worker.beam", ec)) {
    return dir;
  }
  fs::create_directories(dir.parent_path(), ec);
  auto staging = util::TempDir::create(dir.parent_path(), ".build-");
  if (!staging) {
    return std::unexpected(core::JailSetupFailed{"worker", staging.error()});
  }
  jail::ProcessSpec spec;
  spec.argv = {toolchain.erlc.string(), "-o", staging->path().string(), source.string()};
  spec.env = {"PATH=" + toolchain.path_env, "HOME=" + staging->path().string(), "LANG=C.UTF-8"};
  spec.cwd = staging->path();
  spec.limits.wall_timeout_ms = 60'000;
  spec.limits.memory_bytes = 0;
  jail::GroupRunner runner;
  auto result = runner.run(spec);
  if (!result.succeeded()) {
    return std::unexpected(core::JailSetupFailed{
      "worker", fmt::format("compiling {} with {} failed: {}", source.string(), toolchain.erlc.string(),
                            result.output.substr(0, 2000))});
  }
  if (::rename(staging->path().c_str(), dir.c_str()) == 0) {
    (void)staging->keep();
    return dir;
  }
  if (fs::is_regular_file(dir / "sandbox_worker.beam", ec)) {
    return dir; // compiled by another engine meanwhile
  }
  return std::unexpected(core::JailSetupFailed{"worker", util::errno_message("rename " + dir.string())});
}

std::vector<std::string> default_worker_env(const std::map<std::string, std::string>& extra,
                                            const backends::ToolchainRef& toolchain)
{
  backends::BackendRequest request;
  request.paths.work_job = kJobDirInside;
  request.toolchain = toolchain;
  auto env = backends::job_environment(request, extra);
  // A crashing VM must not spend its deadline writing erl_crash.dump.
  env.push_back("ERL_CRASH_DUMP_SECONDS=0");
  return env;
}

std::expected<std::unique_ptr<Worker>, core::Error>
Worker::start(jail::NamespaceRunner& runner, const WorkerProfile& profile,
              std::chrono::milliseconds boot_timeout)
{
  backends::BackendRequest toolchain_request;
  toolchain_request.toolchain = profile.toolchain;
  auto tools = backends::require_toolchain(toolchain_request);
  if (!tools) {
    return std::unexpected(tools.error());
  }
  std::error_code ec;
  auto ebin = worker_ebin_for(**tools);
  if (!ebin) {
    return std::unexpected(ebin.error());
  }
  static std::atomic<std::uint64_t> serial{0};
  std::unique_ptr<Worker> worker(new Worker());
  worker->m_id = ++serial;
  worker->m_profile = profile;
  auto temp = util::TempDir::create(util::default_temp_root(), "sandbox-worker-");
  if (!temp) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", temp.error()});
  }
  worker->m_temp.emplace(std::move(*temp));
  worker->m_job_dir = worker->m_temp->path() / "job";
  for (const char* sub : {"", "home", "tmp"}) {
    fs::create_directories(worker->m_job_dir / sub, ec);
    if (ec) {
      return std::unexpected(core::JailSetupFailed{"temp_dir", ec.message()});
    }
  }
  worker->m_sandbox_dir = worker->m_temp->path() / "sandbox";
  worker->m_prior_dir = worker->m_temp->path() / "prior";
  for (const auto* dir : {&worker->m_sandbox_dir, &worker->m_prior_dir}) {
    fs::create_directory(*dir, ec);
    if (ec || ::chmod(dir->c_str(), 0755) != 0) {
      return std::unexpected(core::JailSetupFailed{"temp_dir", "cannot create " + dir->string()});
    }
  }

  jail::ProcessSpec spec;
  spec.argv = {(*tools)->erl.string(), "-noinput", "-start_epmd", "false",
               // Idle workers must not spin on the cores jobs need.
               "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none", "+SDio", "1", "+A", "1"};
  for (auto& dir : elixir_code_path((*tools)->elixir)) {
    spec.argv.push_back("-pa");
    spec.argv.push_back(std::move(dir));
  }
  for (const char* arg : {"-pa", kWorkerEbinInside, "-s", "sandbox_worker", "main"}) {
    spec.argv.emplace_back(arg);
  }
  spec.env = profile.env;
  spec.cwd = kJobDirInside;
  spec.binds.push_back({worker->m_job_dir, kJobDirInside, true});
  spec.binds.push_back({worker->m_sandbox_dir, kSandboxInside, false});
  spec.binds.push_back({worker->m_prior_dir, kPriorInside, false});
  spec.binds.push_back({*ebin, kWorkerEbinInside, false});
  spec.toolchain_paths = (*tools)->jail_paths;
  spec.limits = profile.limits;
  // The jail lives as long as the worker; requests carry their own deadlines.
  spec.limits.wall_timeout_ms = std::int64_t{7} * 24 * 3600 * 1000;

  auto to_worker = make_pipe();
  auto from_worker = make_pipe();
  if (!to_worker || !from_worker) {
    return std::unexpected(core::JailSetupFailed{"pipe", to_worker ? from_worker.error() : to_worker.error()});
  }
  std::vector<util::Fd> inherit;
  inherit.push_back(std::move(to_worker->first));    // fd 3: the worker reads requests
  inherit.push_back(std::move(from_worker->second)); // fd 4: the worker writes replies
  worker->m_to_worker = std::move(to_worker->second);
  worker->m_from_worker = std::move(from_worker->first);
  ::fcntl(worker->m_to_worker.get(), F_SETFL, O_NONBLOCK);

  auto job = runner.start(spec, std::move(inherit));
  if (!job) {
    return std::unexpected(
      backends::verdict_error(job.error(), spec.limits, job.error().output, {}));
  }
  worker->m_job = std::move(*job);
  worker->m_alive = true;

  auto deadline = Clock::now() + boot_timeout;
  auto sent = write_frame(worker->m_to_worker.get(), encode_hello(), deadline);
  auto reply = sent ? read_frame(worker->m_from_worker.get(), deadline)
                    : std::expected<std::string, FrameFailure>(std::unexpected(sent.error()));
  if (!reply) {
    auto reason = reply.error().kind == FrameError::timeout ? jail::Verdict::wall_timeout
                                                            : jail::Verdict::signaled;
    return std::unexpected(worker->kill_and_explain(reason, boot_timeout.count(),
                                                    "worker start: " + reply.error().detail));
  }
  auto hello = decode_hello(*reply);
  if (!hello || hello->version != kProtocolVersion) {
    return std::unexpected(worker->kill_and_explain(
      jail::Verdict::signaled, boot_timeout.count(),
      hello ? fmt::format("worker speaks protocol {}, the engine {}", hello->version, kProtocolVersion)
            : "worker handshake: " + hello.error()));
  }
  worker->m_hello = std::move(*hello);
  // What a submission must not redefine, asked once.
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto listed = worker->exchange(encode_loaded_modules(), std::max(left, std::chrono::milliseconds(1)));
  if (!listed) {
    return std::unexpected(listed.error());
  }
  auto modules = decode_loaded_modules(*listed);
  if (!modules) {
    return std::unexpected(worker->kill_and_explain(jail::Verdict::signaled, boot_timeout.count(),
                                                    "loaded modules: " + modules.error()));
  }
  worker->m_loaded_modules = {modules->begin(), modules->end()};
  worker->m_job_dir_listing = worker->job_dir_listing();
  return worker;
}

Worker::~Worker()
{
  m_to_worker.reset(); // the worker halts on end of file...
  if (m_job) {
    m_job->stop(jail::Verdict::signaled); // ...but it is not asked twice
    m_job->wait();
  }
  // m_temp removes the job directory.
}

core::Error Worker::kill_and_explain(jail::Verdict reason, std::int64_t timeout_ms, std::string what)
{
  m_alive = false;
  m_job->stop(reason);
  const auto& result = m_job->wait();
  if (std::getenv("SANDBOX_WORKER_DEBUG") != nullptr) {
    std::fprintf(stderr, "worker %llu ended (%s, verdict %s): %s\n", static_cast<unsigned long long>(m_id),
                 what.c_str(), std::string(jail::to_string(result.verdict)).c_str(),
                 result.output.substr(0, 2000).c_str());
  }
  auto limits = m_profile.limits;
  limits.wall_timeout_ms = timeout_ms;
  if (result.verdict == jail::Verdict::exited) {
    return core::CompilerCrash{"worker_exit",
                               fmt::format("the compile worker exited with status {} ({})",
                                           result.exit_code, what),
                               {{"output", result.output}}};
  }
  if (result.verdict == jail::Verdict::signaled && reason == jail::Verdict::signaled &&
      result.signal == 0) {
    // Killed by the engine for a protocol violation.
    return core::CompilerCrash{"protocol", what, {{"output", result.output}}};
  }
  return backends::verdict_error(result, limits, result.output, {}, "the warm compile worker");
}

std::expected<std::string, core::Error> Worker::exchange(const std::string& payload,
                                                         std::chrono::milliseconds timeout)
{
  m_last_used = Clock::now();
  if (!alive()) {
    return std::unexpected(kill_and_explain(jail::Verdict::signaled, timeout.count(),
                                            "the worker had already ended"));
  }
  auto deadline = Clock::now() + timeout;
  if (auto sent = write_frame(m_to_worker.get(), payload, deadline); !sent) {
    auto reason = sent.error().kind == FrameError::timeout ? jail::Verdict::wall_timeout
                                                           : jail::Verdict::signaled;
    return std::unexpected(kill_and_explain(reason, timeout.count(), sent.error().detail));
  }
  auto frame = read_frame(m_from_worker.get(), deadline);
  if (!frame) {
    switch (frame.error().kind) {
    case FrameError::timeout:
      return std::unexpected(kill_and_explain(jail::Verdict::wall_timeout, timeout.count(), "deadline"));
    case FrameError::too_large:
      m_alive = false;
      m_job->stop(jail::Verdict::signaled);
      m_job->wait();
      return std::unexpected(core::OutputLimitExceeded{kMaxFrameBytes});
    default:
      // The worker closed its port: it died (crash, limit) or exited. Let
      // the supervisor see why before the engine adds a verdict of its own.
      for (int i = 0; i < 300 && !m_job->finished(); ++i) {
        ::usleep(10'000);
      }
      return std::unexpected(kill_and_explain(jail::Verdict::signaled, timeout.count(),
                                              "the worker closed its port: " + frame.error().detail));
    }
  }
  m_last_used = Clock::now();
  return std::move(*frame);
}

std::expected<CompileReply, core::Error> Worker::compile(const CompileRequest& request,
                                                         std::chrono::milliseconds timeout)
{
  auto frame = exchange(encode_compile(request), timeout);
  if (!frame) {
    return std::unexpected(frame.error());
  }
  auto reply = decode_compile_reply(*frame);
  if (!reply) {
    return std::unexpected(
      kill_and_explain(jail::Verdict::signaled, timeout.count(), "malformed reply: " + reply.error()));
  }
  if (reply->status == CompileReply::Status::failed) {
    return std::unexpected(
      kill_and_explain(jail::Verdict::signaled, timeout.count(), "worker failure: " + reply->failure));
  }
  return std::move(*reply);
}

std::expected<CheckReply, core::Error> Worker::check(long atom_budget, long memory_budget,
                                                     std::chrono::milliseconds timeout)
{
  auto frame = exchange(encode_check(atom_budget, memory_budget), timeout);
  if (!frame) {
    return std::unexpected(frame.error());
  }
  auto reply = decode_check_reply(*frame);
  if (!reply) {
    return std::unexpected(
      kill_and_explain(jail::Verdict::signaled, timeout.count(), "hygiene check: " + reply.error()));
  }
  return std::move(*reply);
}

std::string Worker::job_dir_listing() const
{
  std::string out;
  std::error_code ec;
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(m_job_dir, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) {
      lines.push_back(it->path().string() + " ?");
      continue;
    }
    lines.push_back(fmt::format("{} {} {} {} {}.{}", it->path().lexically_relative(m_job_dir).string(),
                                st.st_mode, st.st_size, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec));
  }
  if (ec) {
    lines.push_back("! " + ec.message());
  }
  std::sort(lines.begin(), lines.end());
  for (auto& line : lines) {
    out += line;
    out += '\n';
  }
  return out;
}

bool Worker::job_dir_pristine() const
{
  return job_dir_listing() == m_job_dir_listing;
}

} // namespace sandbox::worker
