#pragma once
// The Hex packages a project needs, from its mix.lock: the declared
// dependencies and, through the lock's requirement lists, theirs, in
// dependency order (docs/dependencies.md).

#include "core/error.h"
#include "deps/mix_lock.h"

#include <expected>
#include <map>
#include <string>
#include <vector>

namespace sandbox::compiler {

// An optional requirement is part of the closure only when something
// requires it without `optional`, as Mix does.
struct Closure {
  std::vector<std::string> order; // dependencies before dependents
  std::map<std::string, std::vector<std::string>> deps_of; // within the closure
};

// The closure of `roots`; every member must be pinned in the lock as a Hex
// package, at most 500 of them, and without a cycle.
std::expected<Closure, core::Error> resolve_closure(const deps::MixLock& lock, const std::vector<std::string>& roots);

// Every package `app` needs to compile, itself excluded, in dependency order.
std::vector<std::string> needs_of(const Closure& closure, const std::string& app);

} // namespace sandbox::compiler
