#include "service/server.h"
#include "service/listen_socket.h"
#include "service/socket_activation.h"

#include "compiler/incremental_compile.h"
#include "service/job_queue.h"
#include "util/fd.h"
#include "util/json.h"
#include "util/time.h"

#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <atomic>
#include <map>
#include <cerrno>
#include <cstring>
#include <expected>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace sandbox::service {

namespace {

using nlohmann::json;
using util::Fd;

class Log {
public:
  explicit Log(std::ostream& out) : m_out(out) {}
  void line(const std::string& text)
  {
    std::lock_guard lock(m_mutex);
    m_out << "sandbox serve: " << text << std::endl;
  }

private:
  std::ostream& m_out;
  std::mutex m_mutex;
};

bool send_line(int fd, const json& response)
{
  std::string text = util::dump_json(response) + "\n";
  std::size_t sent = 0;
  while (sent < text.size()) {
    ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

struct Shared {
  const ServerSettings& settings;
  JobQueue& jobs;
  Log& log;
  int stop_fd; // an eventfd, readable once the server is stopping
  std::atomic<bool> stopping{false};
  fleet::Fleet* fleet = nullptr; // set on a node of a fleet
  std::mutex share_mutex{};
  std::map<uid_t, std::size_t> jobs_by_caller{}; // running and queued, per uid
};

// One of a caller's job slots, taken for the life of a job.
class CallerSlot {
public:
  CallerSlot(Shared& shared, uid_t uid) : m_shared(shared), m_uid(uid) {}
  CallerSlot(const CallerSlot&) = delete;
  CallerSlot& operator=(const CallerSlot&) = delete;
  ~CallerSlot()
  {
    if (m_taken) {
      std::lock_guard lock(m_shared.share_mutex);
      if (--m_shared.jobs_by_caller[m_uid] == 0) {
        m_shared.jobs_by_caller.erase(m_uid);
      }
    }
  }
  bool take()
  {
    std::lock_guard lock(m_shared.share_mutex);
    auto& held = m_shared.jobs_by_caller[m_uid];
    if (held >= effective_caller_share(m_shared.settings)) {
      return false;
    }
    ++held;
    m_taken = true;
    return true;
  }

private:
  Shared& m_shared;
  uid_t m_uid;
  bool m_taken = false;
};

class Connection {
public:
  Connection(Fd client, Shared& shared, Caller caller, bool allowed)
    : m_client(std::move(client)), m_shared(shared), m_caller(std::move(caller)), m_allowed(allowed)
  {
  }

  void run()
  {
    while (auto line = next_line()) {
      if (line->empty()) {
        continue;
      }
      auto response = m_allowed ? answer(*line) : refusal(*line);
      if (!response || !send_line(m_client.get(), *response) || !m_allowed) {
        return;
      }
    }
  }

private:
  enum class Read { data, closed, stop };

  Read read_some()
  {
    char chunk[65536];
    ssize_t n;
    do {
      n = ::read(m_client.get(), chunk, sizeof chunk);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      return Read::closed;
    }
    m_buffer.append(chunk, static_cast<std::size_t>(n));
    return Read::data;
  }

  // The next request line; nullopt when the client is gone, the request is
  // too large (answered first) or the server is stopping.
  std::optional<std::string> next_line()
  {
    const std::size_t limit = m_shared.settings.max_request_bytes;
    while (true) {
      auto newline = m_buffer.find('\n');
      if (newline != std::string::npos) {
        if (newline > limit) {
          break;
        }
        std::string line = m_buffer.substr(0, newline);
        m_buffer.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        return line;
      }
      if (m_buffer.size() > limit) {
        break;
      }
      pollfd fds[2] = {{m_client.get(), POLLIN, 0}, {m_shared.stop_fd, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) {
          continue;
        }
        return std::nullopt;
      }
      if (fds[1].revents & POLLIN) {
        return std::nullopt;
      }
      if (read_some() != Read::data) {
        return std::nullopt;
      }
    }
    // No way to find where an oversized request ends: answer and hang up.
    send_line(m_client.get(), protocol_error(kind::request_too_large, {{"limit", limit}}));
    return std::nullopt;
  }

  // A caller outside the allow-lists gets one typed answer, then the
  // connection closes; nothing of the request is run.
  json refusal(const std::string& line) const
  {
    auto parsed = parse_request(line);
    return with_id(protocol_error(kind::caller_not_allowed, {{"uid", m_caller.uid}, {"gid", m_caller.gid}}),
                   parsed.id);
  }

  std::optional<json> answer(const std::string& line)
  {
    auto parsed = parse_request(line);
    if (parsed.error) {
      return with_id(*parsed.error, parsed.id);
    }
    const auto* operation = parsed.operation;
    const std::string name(operation->name);
    if (!operation->is_job) {
      return with_id(dispatch(*operation, parsed.request, m_caller), parsed.id);
    }
    CallerSlot slot(m_shared, m_caller.uid);
    if (!slot.take()) {
      m_shared.log.line(fmt::format("{} for {}: busy, the caller's share is in use", name, m_caller.describe()));
      auto counts = m_shared.jobs.counts();
      return with_id(protocol_error(kind::busy, {{"reason", "this caller's share of the job slots is in use"},
                                                 {"caller_share", effective_caller_share(m_shared.settings)},
                                                 {"running", counts.running},
                                                 {"queued", counts.queued},
                                                 {"max_jobs", m_shared.settings.max_jobs},
                                                 {"max_queue", m_shared.settings.max_queue}}),
                     parsed.id);
    }
    util::Stopwatch clock;
    if (m_shared.fleet != nullptr && (name == "compile" || name == "compile_string")) {
      return through_fleet(*operation, parsed, clock);
    }
    auto job = m_shared.jobs.submit([operation, request = std::move(parsed.request), caller = m_caller] {
      return dispatch(*operation, request, caller);
    });
    if (!job) {
      if (m_shared.stopping) {
        return with_id(protocol_error(kind::cancelled, {{"reason", "the service is stopping"}}), parsed.id);
      }
      auto counts = m_shared.jobs.counts();
      return with_id(protocol_error(kind::busy, {{"running", counts.running},
                                                 {"queued", counts.queued},
                                                 {"max_jobs", m_shared.settings.max_jobs},
                                                 {"max_queue", m_shared.settings.max_queue}}),
                     parsed.id);
    }
    if (!wait_for(*job)) {
      job->cancel("the client disconnected");
      job->take_response(); // the job's processes are gone when it returns
      m_shared.log.line(fmt::format("{} for {}: client disconnected, job cancelled after {} ms", name,
                                    m_caller.describe(), clock.elapsed_ms()));
      return std::nullopt;
    }
    auto response = job->take_response();
    m_shared.log.line(fmt::format("{} for {}: {} in {} ms", name, m_caller.describe(),
                                  response.value("ok", false) ? "ok"
                                                              : response["error"].value("type", "error"),
                                  clock.elapsed_ms()));
    return with_id(std::move(response), parsed.id);
  }

  // On a node of a fleet the request runs on this connection's thread: the
  // fleet answers it (waiting here, watching the client), or it runs on one
  // of this node's job slots as any other job.
  std::optional<json> through_fleet(const Operation& operation, const ParsedRequest& parsed,
                                    const util::Stopwatch& clock)
  {
    bool gone = false;
    fleet::Route route;
    route.fleet = m_shared.fleet;
    route.client_gone = [this] { return client_hung_up(); };
    route.local = [this, &gone](const std::function<json()>& work) -> json {
      auto job = m_shared.jobs.submit([&work] { return work(); });
      if (!job) {
        auto counts = m_shared.jobs.counts();
        return protocol_error(kind::busy, {{"running", counts.running},
                                           {"queued", counts.queued},
                                           {"max_jobs", m_shared.settings.max_jobs},
                                           {"max_queue", m_shared.settings.max_queue}});
      }
      if (!wait_for(*job)) {
        job->cancel("the client disconnected");
        job->take_response();
        gone = true;
        return protocol_error(kind::cancelled, {{"reason", "the client disconnected"}});
      }
      return job->take_response();
    };
    fleet::ScopedRoute scoped(&route);
    auto response = dispatch(operation, parsed.request, m_caller);
    const std::string name(operation.name);
    if (gone || client_hung_up()) {
      m_shared.log.line(fmt::format("{} for {}: client disconnected after {} ms", name, m_caller.describe(),
                                    clock.elapsed_ms()));
      return std::nullopt;
    }
    auto via = response.contains("fleet") ? response["fleet"].value("node", std::string("local")) : "local";
    m_shared.log.line(fmt::format("{} for {}: {} in {} ms (fleet: {})", name, m_caller.describe(),
                                  response.value("ok", false) ? "ok" : response["error"].value("type", "error"),
                                  clock.elapsed_ms(), via.empty() ? "local" : via));
    return with_id(std::move(response), parsed.id);
  }

  // Whether the client closed the connection (a half-closed one still waits
  // for its answer); a pipelined request is kept for later.
  bool client_hung_up()
  {
    pollfd pfd{m_client.get(), static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (::poll(&pfd, 1, 0) <= 0) {
      return false;
    }
    if (pfd.revents & (POLLHUP | POLLERR)) {
      return true;
    }
    if ((pfd.revents & POLLIN) && m_buffer.size() <= m_shared.settings.max_request_bytes && !m_half_closed) {
      m_half_closed = read_some() == Read::closed;
    }
    return false;
  }

  // Waits for the job while watching the client; false when the client hung
  // up. A client that only shut down its writing side still gets its answer.
  bool wait_for(const Job& job)
  {
    bool reading = true;
    bool half_closed = false;
    while (true) {
      short events = half_closed ? 0 : static_cast<short>(POLLRDHUP | (reading ? POLLIN : 0));
      pollfd fds[2] = {{job.done_fd(), POLLIN, 0}, {m_client.get(), events, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) {
          continue;
        }
        return false;
      }
      if (fds[0].revents & POLLIN) {
        return true;
      }
      if (fds[1].revents & (POLLHUP | POLLERR)) {
        return false;
      }
      if (reading && (fds[1].revents & POLLIN)) {
        // A pipelined request: keep it for later, up to the size limit.
        half_closed = read_some() == Read::closed;
        reading = m_buffer.size() <= m_shared.settings.max_request_bytes;
      } else if (fds[1].revents & POLLRDHUP) {
        half_closed = true;
      }
    }
  }

  Fd m_client;
  Shared& m_shared;
  Caller m_caller;
  bool m_allowed = true;
  bool m_half_closed = false;
  std::string m_buffer;
};

struct Worker {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> finished = std::make_shared<std::atomic<bool>>(false);
};

void reap(std::list<Worker>& workers, bool all)
{
  for (auto it = workers.begin(); it != workers.end();) {
    if (all || it->finished->load()) {
      it->thread.join();
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
}

} // namespace

std::size_t effective_caller_share(const ServerSettings& settings)
{
  if (settings.caller_share > 0) {
    return settings.caller_share;
  }
  return std::max<std::size_t>(1, (settings.max_jobs + settings.max_queue) / 2);
}

bool caller_allowed(const ServerSettings& settings, const Caller& caller)
{
  if (caller.privileged() || caller.uid == ::geteuid() ||
      (settings.allow_users.empty() && settings.allow_groups.empty())) {
    return true;
  }
  auto in = [](const auto& list, auto value) { return std::find(list.begin(), list.end(), value) != list.end(); };
  if (in(settings.allow_users, caller.uid) || in(settings.allow_groups, caller.gid)) {
    return true;
  }
  return std::any_of(caller.groups.begin(), caller.groups.end(),
                     [&](gid_t group) { return in(settings.allow_groups, group); });
}

int serve(const ServerSettings& settings, std::ostream& log_stream)
{
  Log log(log_stream);
  // Signals are read from a signalfd by the accept loop; every thread the
  // server starts inherits this mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{previous};
  Fd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC));
  Fd stop_fd(::eventfd(0, EFD_CLOEXEC));
  if (!signal_fd || !stop_fd) {
    log.line(fmt::format("cannot set up signal handling: {}", std::strerror(errno)));
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);

  // Under systemd the socket unit owns the socket file: it is neither
  // replaced at start nor removed at stop (socket_file stays empty).
  SocketFile socket_file;
  auto activated = activated_socket();
  if (!activated) {
    log.line(activated.error());
    return 1;
  }
  bool is_activated = activated->has_value();
  auto listener = is_activated ? std::expected<Fd, std::string>(std::move(**activated))
                               : listen_on(settings.socket_path, settings.socket_mode, socket_file);
  if (!listener) {
    log.line(listener.error());
    return 1;
  }
  std::string listening_on = is_activated ? bound_path(listener->get()) : settings.socket_path.string();
  if (is_activated && !settings.socket_path.empty() && settings.socket_path.string() != listening_on) {
    log.line(fmt::format("--socket {} is ignored: systemd passed the socket {}", settings.socket_path.string(),
                         listening_on));
  }
  if (settings.worker_pool) {
    compiler::configure_worker_pool(*settings.worker_pool);
  }
  compiler::watch_compiled_trees();
  // A gateway of a fleet (no slots for the fleet's jobs) keeps one local slot
  // for when the store cannot be reached.
  JobQueue jobs(std::max<std::size_t>(settings.max_jobs, 1), settings.max_queue);
  Shared shared{settings, jobs, log, stop_fd.get()};
  std::shared_ptr<fleet::Fleet> fleet;
  if (settings.cluster) {
    fleet = std::make_shared<fleet::Fleet>(*settings.cluster);
    fleet->log = [&log](const std::string& line) { log.line(line); };
    fleet::set_process_fleet(fleet);
    shared.fleet = fleet.get();
    auto run_local = [](const json& request) {
      const auto* operation = find_operation(request.value("op", std::string()));
      return operation != nullptr ? dispatch(*operation, request, Caller::of_process())
                                  : protocol_error(kind::unknown_operation, {});
    };
    auto has_slot = [&jobs, &settings] {
      auto counts = jobs.counts();
      return counts.running + counts.queued < settings.max_jobs;
    };
    auto submit = [&jobs](std::function<void()> work) {
      return jobs.submit([work = std::move(work)] {
               work();
               return json{{"ok", true}};
             }) != nullptr;
    };
    fleet->start(run_local, has_slot, submit);
    log.line(fmt::format("node {} of the fleet at {} (namespace {}, job slots for the fleet: {}, claim timeout {} ms)",
                         settings.cluster->node.empty() ? fleet->status().value("node", "") : settings.cluster->node,
                         settings.cluster->url.describe(), settings.cluster->ns, settings.cluster->jobs,
                         settings.cluster->claim_timeout.count()));
  }
  std::list<Worker> connections;
  log.line(fmt::format("listening on {}{} (jobs {}, queue {}, {} per caller, max request {} bytes)", listening_on,
                       is_activated ? " (socket activation)" : "", settings.max_jobs, settings.max_queue, effective_caller_share(settings),
                       settings.max_request_bytes));

  while (true) {
    pollfd fds[2] = {{listener->get(), POLLIN, 0}, {signal_fd.get(), POLLIN, 0}};
    if (::poll(fds, 2, 1000) < 0 && errno != EINTR) {
      log.line(fmt::format("poll: {}", std::strerror(errno)));
      break;
    }
    reap(connections, false);
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      [[maybe_unused]] auto n = ::read(signal_fd.get(), &info, sizeof info);
      log.line(fmt::format("signal {}: stopping", info.ssi_signo));
      break;
    }
    if (!(fds[0].revents & POLLIN)) {
      continue;
    }
    Fd client(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) {
      continue;
    }
    auto caller = Caller::of_socket(client.get());
    if (!caller) {
      log.line(fmt::format("connection refused: {}", caller.error()));
      continue;
    }
    bool allowed = caller_allowed(settings, *caller);
    if (!allowed) {
      log.line(fmt::format("connection from {} refused: not an allowed user or group", caller->describe()));
    }
    if (connections.size() >= settings.max_connections) {
      send_line(client.get(), protocol_error(kind::busy, {{"reason", "too many connections"},
                                                          {"max_connections", settings.max_connections}}));
      continue;
    }
    // A client that stops reading cannot hold a connection thread forever.
    timeval send_timeout{60, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    Worker worker;
    worker.thread = std::thread([&shared, fd = client.release(), finished = worker.finished,
                                 who = std::move(*caller), allowed]() mutable {
      Connection(Fd(fd), shared, std::move(who), allowed).run();
      finished->store(true);
    });
    connections.push_back(std::move(worker));
  }

  // No new clients; idle connections close; running jobs get the grace period.
  listener->reset();
  socket_file.remove();
  shared.stopping = true;
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd.get(), &one, sizeof one);
  if (fleet) {
    fleet->stop(); // claims no more; jobs it runs finish below and publish
  }
  jobs.shutdown(settings.shutdown_grace_ms, "the service is stopping");
  if (fleet) {
    fleet::set_process_fleet(nullptr);
  }
  reap(connections, true);
  compiler::stop_watching_trees();
  compiler::shutdown_worker_pool();
  log.line("stopped");
  return 0;
}

} // namespace sandbox::service
