#include "compiler/after_answer.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace sandbox::compiler {

namespace {

constexpr std::size_t kMaxWarningsPerOwner = 16;

class AfterAnswer {
public:
  AfterAnswer() = default;
  AfterAnswer(const AfterAnswer&) = delete;
  AfterAnswer& operator=(const AfterAnswer&) = delete;
  ~AfterAnswer() { drain(); } // an exit that did not stop the engine first

  void enable()
  {
    std::lock_guard lock(m_mutex);
    if (m_running) return;
    m_running = true;
    m_stopping = false;
    m_thread = std::thread([this] { run(); });
  }

  void drain()
  {
    {
      std::lock_guard lock(m_mutex);
      if (!m_running) return;
      m_stopping = true;
    }
    m_changed.notify_all();
    m_thread.join();
    std::lock_guard lock(m_mutex);
    m_running = false;
  }

  void submit(std::function<void()> work)
  {
    {
      std::lock_guard lock(m_mutex);
      if (m_running && !m_stopping) {
        m_queue.push_back(std::move(work));
        m_changed.notify_all();
        return;
      }
    }
    work();
  }

  bool running()
  {
    std::lock_guard lock(m_mutex);
    return m_running && !m_stopping;
  }

  void warn(const std::string& owner, std::string warning)
  {
    std::lock_guard lock(m_mutex);
    auto& list = m_warnings[owner];
    if (list.size() < kMaxWarningsPerOwner) list.push_back(std::move(warning));
  }

  std::vector<std::string> take_warnings(const std::string& owner)
  {
    std::lock_guard lock(m_mutex);
    auto it = m_warnings.find(owner);
    if (it == m_warnings.end()) return {};
    auto out = std::move(it->second);
    m_warnings.erase(it);
    return out;
  }

private:
  void run()
  {
    std::unique_lock lock(m_mutex);
    while (true) {
      m_changed.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) return; // stopping, and all done
      auto work = std::move(m_queue.front());
      m_queue.pop_front();
      lock.unlock();
      try {
        work();
      } catch (...) {
        // the work reports its own failures; nothing may end the thread
      }
      lock.lock();
    }
  }

  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::deque<std::function<void()>> m_queue;
  std::map<std::string, std::vector<std::string>> m_warnings;
  std::thread m_thread;
  bool m_running = false;
  bool m_stopping = false;
};

AfterAnswer& instance()
{
  static AfterAnswer queue;
  return queue;
}

} // namespace

void enable_after_answer() { instance().enable(); }
void drain_after_answer() { instance().drain(); }
void after_answer(std::function<void()> work) { instance().submit(std::move(work)); }
bool answers_first() { return instance().running(); }
void defer_warning(const std::string& owner, std::string warning) { instance().warn(owner, std::move(warning)); }
std::vector<std::string> take_deferred_warnings(const std::string& owner) { return instance().take_warnings(owner); }

} // namespace sandbox::compiler
