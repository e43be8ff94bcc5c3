#pragma once
// Cancelling a running job from another thread. A host that runs jobs for
// remote callers (`sandbox serve`) installs a token on the thread that runs a
// job; the runners poll it, and once it is cancelled they end the job the way
// a passed deadline does: the whole process tree is killed and the result is
// a wall_timeout verdict. The caller that cancelled knows it did and reports
// the job as cancelled; nobody else sees such a result.

#include <atomic>
#include <memory>

namespace sandbox::jail {

class CancelToken {
public:
  void cancel() noexcept { m_cancelled.store(true, std::memory_order_release); }
  [[nodiscard]] bool cancelled() const noexcept { return m_cancelled.load(std::memory_order_acquire); }

private:
  std::atomic<bool> m_cancelled{false};
};

// Installs `token` for the jobs this thread runs until the scope ends.
class ScopedCancellation {
public:
  explicit ScopedCancellation(std::shared_ptr<const CancelToken> token);
  ScopedCancellation(const ScopedCancellation&) = delete;
  ScopedCancellation& operator=(const ScopedCancellation&) = delete;
  ~ScopedCancellation();

private:
  std::shared_ptr<const CancelToken> m_previous;
};

// True when this thread has a token and it was cancelled.
bool cancellation_requested() noexcept;

// How often runners look at the token while a job runs.
constexpr int kCancelPollMs = 50;

} // namespace sandbox::jail
