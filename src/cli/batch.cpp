#include "cli/batch.h"

#include "cli/commands.h"
#include "compiler/isolated_compiler.h"
#include "util/json.h"
#include "util/time.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace sandbox::cli {

namespace {

struct Outcome {
  std::optional<compiler::CompileResult> result;
  std::int64_t elapsed_ms = 0;
};

struct Event {
  bool finished = false;
  std::size_t index = 0;
};

std::string display_name(const std::string& path)
{
  auto name = std::filesystem::path(path).lexically_normal().filename().string();
  if (name.empty()) {
    name = std::filesystem::path(path).lexically_normal().parent_path().filename().string();
  }
  return name.empty() ? path : name;
}

std::string result_line(const std::string& name, const Outcome& outcome)
{
  const auto& result = *outcome.result;
  if (result) {
    return fmt::format("  [{}] {} {}ms -> {}", result->cache_hit ? "cached" : "compiled", name, outcome.elapsed_ms,
                       result->temp_dir.string());
  }
  return fmt::format("  [FAILED] {} {}ms: {}", name, outcome.elapsed_ms, core::describe(result.error()));
}

std::string status_line(std::size_t done, std::size_t total, const std::set<std::size_t>& running,
                        const std::vector<std::string>& names, double seconds)
{
  std::string current;
  for (auto index : running) {
    current += (current.empty() ? "" : ", ") + names[index];
  }
  return fmt::format("[{}/{}] {}{:.1f}s", done, total, current.empty() ? "" : "compiling " + current + " ", seconds);
}

} // namespace

int run_batch(const std::vector<std::string>& paths, const core::CompileOptions& options,
              const BatchSettings& settings, std::ostream& out)
{
  const std::size_t total = paths.size();
  std::vector<std::string> names;
  for (const auto& path : paths) {
    names.push_back(display_name(path));
  }
  std::vector<Outcome> outcomes(total);
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Event> events;
  std::size_t next = 0;

  auto worker = [&] {
    while (true) {
      std::size_t index;
      {
        std::lock_guard lock(mutex);
        if (next == total) {
          return;
        }
        index = next++;
        events.push_back({false, index});
      }
      changed.notify_one();
      util::Stopwatch clock;
      auto result = compiler::compile_sandbox(paths[index], options);
      {
        std::lock_guard lock(mutex);
        outcomes[index].result = std::move(result);
        outcomes[index].elapsed_ms = clock.elapsed_ms();
        events.push_back({true, index});
      }
      changed.notify_one();
    }
  };

  util::Stopwatch clock;
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < std::min(std::max<std::size_t>(settings.jobs, 1), total); ++i) {
    threads.emplace_back(worker);
  }

  // Only this thread writes output.
  std::size_t done = 0, successful = 0, started = 0;
  std::set<std::size_t> running;
  const bool show = !settings.json;
  const bool live = show && settings.terminal;
  while (done < total) {
    std::deque<Event> batch;
    {
      std::unique_lock lock(mutex);
      changed.wait_for(lock, std::chrono::milliseconds(100), [&] { return !events.empty(); });
      batch.swap(events);
    }
    for (const auto& event : batch) {
      if (!event.finished) {
        running.insert(event.index);
        ++started;
        if (show && !live) {
          out << fmt::format("[{}/{}] Compiling {}...", started, total, names[event.index]) << std::endl;
        }
        continue;
      }
      running.erase(event.index);
      ++done;
      const auto& outcome = outcomes[event.index];
      successful += outcome.result->has_value() ? 1 : 0;
      if (show) {
        out << (live ? "\r\033[K" : "") << result_line(names[event.index], outcome) << "\n";
      }
    }
    if (live) {
      out << "\r\033[K" << status_line(done, total, running, names, clock.elapsed_seconds()) << std::flush;
    } else {
      out << std::flush;
    }
  }
  for (auto& thread : threads) {
    thread.join();
  }
  const std::size_t failed = total - successful;
  if (settings.json) {
    nlohmann::json results = nlohmann::json::array();
    for (std::size_t i = 0; i < total; ++i) {
      auto item = compiler::to_json(*outcomes[i].result);
      item["path"] = paths[i];
      item["elapsed_ms"] = outcomes[i].elapsed_ms;
      results.push_back(std::move(item));
    }
    out << util::dump_json({{"ok", failed == 0},
                            {"total", total},
                            {"successful", successful},
                            {"failed", failed},
                            {"elapsed_ms", clock.elapsed_ms()},
                            {"results", results}})
        << std::endl;
  } else {
    out << (live ? "\r\033[K" : "")
        << fmt::format("\nSummary: {} successful, {} failed ({:.1f}s)", successful, failed, clock.elapsed_seconds())
        << std::endl;
  }
  return failed == 0 ? kExitOk : kExitFailed;
}

} // namespace sandbox::cli
