#include "service/job_queue.h"

#include "service/protocol.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <system_error>

namespace sandbox::service {

Job::Job(std::function<nlohmann::json()> work)
    : m_work(std::move(work)), m_done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
{
  if (!m_done) {
    throw std::system_error(errno, std::generic_category(), "eventfd");
  }
}

void Job::cancel(const std::string& reason)
{
  {
    std::lock_guard lock(m_mutex);
    if (m_cancel_reason.empty()) {
      m_cancel_reason = reason;
    }
  }
  m_token->cancel();
}

bool Job::done() const
{
  std::lock_guard lock(m_mutex);
  return m_response.has_value();
}

nlohmann::json Job::take_response()
{
  std::unique_lock lock(m_mutex);
  m_finished.wait(lock, [this] { return m_response.has_value(); });
  return std::move(*m_response);
}

void Job::run()
{
  nlohmann::json response;
  if (!m_token->cancelled()) {
    jail::ScopedCancellation scope(m_token);
    try {
      response = m_work();
    } catch (const std::exception& e) {
      response = protocol_error(kind::internal_error, {{"reason", e.what()}});
    }
  }
  finish(std::move(response));
}

void Job::finish(nlohmann::json response)
{
  {
    std::lock_guard lock(m_mutex);
    // A cancelled job's result (a killed compile) is not what the caller
    // asked for; say why it ended instead.
    if (m_token->cancelled()) {
      response = protocol_error(kind::cancelled, {{"reason", m_cancel_reason}});
    }
    m_response = std::move(response);
  }
  m_finished.notify_all();
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(m_done.get(), &one, sizeof one);
}

JobQueue::JobQueue(std::size_t workers, std::size_t queue_limit)
    : m_queue_limit(queue_limit), m_workers_total(workers == 0 ? 1 : workers)
{
  for (std::size_t i = 0; i < m_workers_total; ++i) {
    m_threads.emplace_back([this] { work_loop(); });
  }
}

JobQueue::~JobQueue() { shutdown(0, "the service is stopping"); }

std::shared_ptr<Job> JobQueue::submit(std::function<nlohmann::json()> work)
{
  auto job = std::make_shared<Job>(std::move(work));
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) {
      return nullptr;
    }
    std::size_t idle = m_workers_total - m_running.size();
    if (m_queue.size() >= idle + m_queue_limit) {
      return nullptr;
    }
    m_queue.push_back(job);
  }
  m_wake.notify_one();
  return job;
}

JobQueue::Counts JobQueue::counts() const
{
  std::lock_guard lock(m_mutex);
  return {m_running.size(), m_queue.size()};
}

void JobQueue::work_loop()
{
  while (true) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(m_mutex);
      m_wake.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) {
        return; // stopping, nothing left
      }
      job = m_queue.front();
      m_queue.pop_front();
      m_running.push_back(job);
    }
    job->run();
    {
      std::lock_guard lock(m_mutex);
      std::erase(m_running, job);
    }
    m_idle.notify_all();
  }
}

void JobQueue::shutdown(int grace_ms, const std::string& reason)
{
  {
    std::unique_lock lock(m_mutex);
    if (m_threads.empty()) {
      return;
    }
    m_stopping = true;
    for (auto& job : m_queue) {
      job->cancel(reason);
    }
    m_wake.notify_all();
    // Queued jobs are cancelled and end at once; running ones get the grace.
    if (!m_idle.wait_for(lock, std::chrono::milliseconds(grace_ms),
                         [this] { return m_running.empty() && m_queue.empty(); })) {
      for (auto& job : m_running) {
        job->cancel(reason);
      }
    }
  }
  for (auto& thread : m_threads) {
    thread.join();
  }
  m_threads.clear();
}

} // namespace sandbox::service
