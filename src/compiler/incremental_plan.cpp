#include "compiler/incremental_plan.h"

#include "backends/toolchain.h"
#include "util/hash.h"
#include "util/json.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>

namespace sandbox::compiler {

namespace {

namespace inc = sandbox::incremental;
using nlohmann::json;

std::string stat_identity(const fs::path& path)
{
  std::error_code ec;
  auto real = fs::canonical(path, ec);
  struct stat st {};
  if (ec || ::stat(real.c_str(), &st) != 0) {
    return path.string() + ":missing";
  }
  return fmt::format("{}:{}:{}:{}", real.string(), st.st_size, st.st_mtim.tv_sec, st.st_ino);
}

bool config_input(const std::string& relative)
{
  return relative == "mix.exs" || relative == "mix.lock" || relative.starts_with("config/");
}

bool elixir_source(const std::string& relative)
{
  return relative.starts_with("lib/") && relative.ends_with(".ex");
}

// Why a partial compile would not be sound for this change, if it would not.
std::optional<std::string> partial_unsound(const CacheState& prev, const core::CompileOptions& options,
                                           const inc::TreeDiff& diff, const std::set<std::string>& sources)
{
  if (options.compiler != core::Backend::elixirc && options.compiler != core::Backend::mix) {
    return fmt::format("the {} backend always compiles in full", core::to_string(options.compiler));
  }
  if (prev.unattributed) {
    return std::string("the previous build has modules no source file accounts for");
  }
  if (prev.dependencies.is_array() && !prev.dependencies.empty()) {
    // Mix puts the dependencies on the code path; their builds come from the
    // package store, so only the project's own code compiles again.
    return std::string("the project has dependencies: its own code compiles with Mix");
  }
  for (const auto* set : {&diff.changed, &diff.added, &diff.deleted}) {
    for (const auto& path : *set) {
      if (config_input(path)) {
        return path + " changed";
      }
      if (options.compiler == core::Backend::mix && !sources.contains(path) && !prev.graph.files.contains(path)) {
        return path + " changed (Mix projects recompile in full when a file outside lib/ changes)";
      }
    }
  }
  return std::nullopt;
}

} // namespace

std::string fingerprint(const core::CompileOptions& options)
{
  json fp;
  fp["format"] = 1;
  fp["compiler"] = core::to_string(options.compiler);
  fp["env"] = options.env;
  fp["source_files"] = options.source_files;
  fp["validate_beams"] = options.validate_beams;
  // The toolchain's identity holds its versions, roots and file stamps: a
  // switch of toolchain, or a rebuilt one, is a full compile.
  auto tools = backends::resolve_toolchain(options.toolchain);
  fp["toolchain"] = tools ? (*tools)->identity : "unresolved " + options.toolchain;
  if (tools) {
    fp["tools"] = {stat_identity((*tools)->elixirc), stat_identity((*tools)->erlc)};
  }
  // Escaped, not replaced: two names that differ only in bytes that are not
  // UTF-8 must not give the same fingerprint.
  return util::sha256_hex(util::escape_strings(fp).dump());
}

std::vector<std::string> source_files_of(const core::CompileOptions& options, const inc::TreeStamps& stamps)
{
  std::vector<std::string> out;
  if (!options.source_files.empty()) {
    for (const auto& f : options.source_files) {
      out.push_back(fs::path(f).lexically_normal().string());
    }
    return out;
  }
  for (const auto& [path, stamp] : stamps) {
    if (elixir_source(path)) {
      out.push_back(path);
    }
  }
  return out;
}

std::vector<std::string> Plan::original_changed() const
{
  std::vector<std::string> out;
  for (const auto* set : {&diff.changed, &diff.added, &diff.deleted}) {
    out.insert(out.end(), set->begin(), set->end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Plan plan_compile(const CacheState* prev, const inc::TreeStamps& now,
                  const std::vector<fs::path>& explicit_changed, const core::CompileOptions& options,
                  const std::string& fingerprint, const inc::ObjectStore& store)
{
  Plan plan;
  for (const auto& f : source_files_of(options, now)) {
    plan.sources.insert(f);
  }
  if (options.force_recompile) {
    plan.reason = "force_recompile";
  } else if (options.skip_cache) {
    plan.reason = "skip_cache";
  } else if (!prev) {
    plan.reason = "no usable cache";
  } else if (prev->fingerprint != fingerprint || prev->compiler != core::to_string(options.compiler)) {
    plan.reason = "the toolchain, compile options or env changed";
  } else if (!objects_present(*prev, store)) {
    plan.reason = "cached BEAMs are missing from the engine's store";
  } else {
    plan.diff = inc::diff_trees(prev->stamps, now);
    for (const auto& file : explicit_changed) {
      auto name = file.string();
      if (now.contains(name) && !plan.diff.added.contains(name)) {
        plan.diff.changed.insert(name);
      }
    }
    if (plan.diff.empty()) {
      plan.strategy = "cache_hit";
    } else if (auto why = partial_unsound(*prev, options, plan.diff, plan.sources)) {
      plan.reason = *why;
    } else {
      plan.strategy = "incremental";
    }
  }
  return plan;
}

FirstBatch first_batch(const Plan& plan, const inc::DependencyGraph& prev_graph)
{
  FirstBatch out;
  std::set<std::string> hidden; // changed inputs that are not sources
  for (const auto* set : {&plan.diff.changed, &plan.diff.added}) {
    for (const auto& p : *set) {
      (plan.sources.contains(p) ? out.files : hidden).insert(p);
    }
  }
  for (const auto& p : plan.diff.deleted) {
    if (!prev_graph.files.contains(p)) hidden.insert(p);
  }
  for (const auto& input : hidden) {
    for (const auto& reader : inc::readers_of(prev_graph, input)) {
      if (plan.sources.contains(reader)) out.forced.insert(reader);
    }
  }
  out.files.insert(out.forced.begin(), out.forced.end());
  return out;
}

} // namespace sandbox::compiler
