#pragma once
// The service's jobs: at most `workers` run at once, at most `queue_limit`
// wait behind them, and a submission beyond that is refused at once (the
// caller answers busy). Each job has a cancellation token its runners watch
// (jail/cancel.h) and an eventfd that becomes readable when its response is
// ready, so a connection can wait for the job and for its client together.

#include "jail/cancel.h"
#include "util/fd.h"

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sandbox::service {

class Job {
public:
  explicit Job(std::function<nlohmann::json()> work);

  // Asks the job to stop; a queued job never starts, a running one has its
  // process tree killed. The response then is a `cancelled` error with `reason`.
  void cancel(const std::string& reason);
  [[nodiscard]] int done_fd() const { return m_done.get(); }
  [[nodiscard]] bool done() const;
  // The response; call once done() (blocks until then).
  nlohmann::json take_response();

private:
  friend class JobQueue;
  void run();
  void finish(nlohmann::json response);

  std::function<nlohmann::json()> m_work;
  std::shared_ptr<jail::CancelToken> m_token = std::make_shared<jail::CancelToken>();
  util::Fd m_done;
  mutable std::mutex m_mutex;
  std::condition_variable m_finished;
  std::optional<nlohmann::json> m_response;
  std::string m_cancel_reason;
};

class JobQueue {
public:
  JobQueue(std::size_t workers, std::size_t queue_limit);
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;
  ~JobQueue();

  // Null when every worker is busy and the queue is full.
  std::shared_ptr<Job> submit(std::function<nlohmann::json()> work);

  struct Counts {
    std::size_t running = 0;
    std::size_t queued = 0;
  };
  [[nodiscard]] Counts counts() const;

  // Stops taking jobs, cancels queued ones and, after `grace_ms`, running
  // ones; returns when every worker thread has ended.
  void shutdown(int grace_ms, const std::string& reason);

private:
  void work_loop();

  std::size_t m_queue_limit;
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  std::condition_variable m_idle;
  std::deque<std::shared_ptr<Job>> m_queue;
  std::vector<std::shared_ptr<Job>> m_running;
  std::size_t m_workers_total;
  bool m_stopping = false;
  std::vector<std::thread> m_threads;
};

} // namespace sandbox::service
