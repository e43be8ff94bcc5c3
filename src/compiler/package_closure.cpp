#include "compiler/package_closure.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <set>

namespace sandbox::compiler {

namespace {

constexpr std::size_t kMaxPackages = 500;

} // namespace

std::expected<Closure, core::Error> resolve_closure(const deps::MixLock& lock,
                                                    const std::vector<std::string>& roots)
{
  std::set<std::string> in;
  std::vector<std::string> queue = roots;
  std::vector<std::string> unpinned;
  while (!queue.empty()) {
    auto app = queue.back();
    queue.pop_back();
    if (!in.insert(app).second) {
      continue;
    }
    if (in.size() > kMaxPackages) {
      return std::unexpected(core::DependenciesUnavailable{
        roots, fmt::format("more than {} Hex packages in the closure of mix.lock", kMaxPackages)});
    }
    auto entry = lock.hex.find(app);
    if (entry == lock.hex.end()) {
      unpinned.push_back(app);
      continue;
    }
    for (const auto& req : entry->second.requirements) {
      if (!req.optional) {
        queue.push_back(req.app);
      }
    }
  }
  if (!unpinned.empty()) {
    std::sort(unpinned.begin(), unpinned.end());
    return std::unexpected(core::DependenciesUnavailable{
      unpinned, "not pinned in mix.lock as Hex packages: every Hex dependency must have a lock "
                "entry with its version and checksums (run `mix deps.get` where Hex is "
                "available and keep mix.lock with the project)"});
  }
  Closure closure;
  for (const auto& app : in) {
    auto& deps = closure.deps_of[app];
    for (const auto& req : lock.hex.at(app).requirements) {
      if (in.count(req.app) != 0 && req.app != app) {
        deps.push_back(req.app);
      }
    }
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
  }
  // Depth-first post-order (depth at most kMaxPackages); a cycle, which Hex
  // refuses, is refused here too.
  std::set<std::string> done;
  std::set<std::string> active;
  std::optional<std::string> cycle;
  std::function<void(const std::string&)> visit = [&](const std::string& app) {
    if (done.count(app) != 0 || cycle) {
      return;
    }
    if (active.count(app) != 0) {
      cycle = app;
      return;
    }
    active.insert(app);
    for (const auto& dep : closure.deps_of[app]) {
      visit(dep);
    }
    active.erase(app);
    done.insert(app);
    closure.order.push_back(app);
  };
  for (const auto& app : in) {
    visit(app);
  }
  if (cycle) {
    return std::unexpected(core::DependenciesUnavailable{
      {*cycle}, "mix.lock's requirements form a cycle through this package"});
  }
  return closure;
}

std::vector<std::string> needs_of(const Closure& closure, const std::string& app)
{
  std::set<std::string> seen;
  std::vector<std::string> stack = closure.deps_of.at(app);
  while (!stack.empty()) {
    auto next = stack.back();
    stack.pop_back();
    if (seen.insert(next).second) {
      for (const auto& dep : closure.deps_of.at(next)) {
        stack.push_back(dep);
      }
    }
  }
  std::vector<std::string> out;
  for (const auto& item : closure.order) {
    if (seen.count(item) != 0) {
      out.push_back(item);
    }
  }
  return out;
}

} // namespace sandbox::compiler
