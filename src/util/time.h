#pragma once

#include <chrono>
#include <cstdint>

namespace sandbox::util {

using Clock = std::chrono::steady_clock;

class Stopwatch {
public:
  Stopwatch() : m_start(Clock::now()) {}
  [[nodiscard]] std::int64_t elapsed_ms() const
  {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - m_start).count();
  }
  [[nodiscard]] double elapsed_seconds() const
  {
    return std::chrono::duration<double>(Clock::now() - m_start).count();
  }

private:
  Clock::time_point m_start;
};

} // namespace sandbox::util
