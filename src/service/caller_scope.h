#pragma once
// One request run for one caller. For a caller with the engine's rights (root,
// or the engine's own user) every method hands paths through unchanged. For any
// other caller, paths the request names are read with the caller's rights into
// the engine's staging area (service/caller.h), outputs are made in scratch
// directories and then written into the caller's directories as the caller,
// a result's temp dir is given to the caller, and the response names the
// caller's paths, never the staging area's.

#include "core/options.h"
#include "service/caller.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::service {

// A request refused for its caller; the dispatcher answers with the error.
struct Refused {
  core::Error error;
};

class CallerScope {
public:
  explicit CallerScope(const Caller& caller);
  CallerScope(const CallerScope&) = delete;
  CallerScope& operator=(const CallerScope&) = delete;
  ~CallerScope();

  // False for a caller with the engine's rights: nothing is staged.
  [[nodiscard]] bool acting() const { return m_acting; }
  [[nodiscard]] const Caller& caller() const { return m_caller; }

  // A caller other than root chooses no directory for the engine to create in.
  void check_options(const core::CompileOptions& options) const;
  // The tree to compile or scan (the caller's mirror); throws Refused.
  std::filesystem::path tree(const std::string& path);
  // A private copy of one file; throws Refused.
  std::filesystem::path file(const std::string& path);
  // Where the engine writes outputs bound for `target`; finish() delivers them.
  std::filesystem::path output(const std::string& target);
  // Outputs delivered, temp dirs given, staged paths renamed; throws nothing
  // (a delivery refusal becomes the response).
  nlohmann::json finish(nlohmann::json response);

private:
  std::filesystem::path scratch();
  // A new directory in scratch() for one staged input or one output.
  std::filesystem::path scratch_subdir(const std::string& prefix);

  Caller m_caller;
  bool m_acting = false;
  std::vector<Mirror> m_mirrors;
  std::optional<std::filesystem::path> m_scratch;
  std::vector<std::pair<std::string, std::string>> m_renames; // staged prefix -> caller's
  std::vector<std::pair<std::filesystem::path, std::string>> m_outputs; // scratch -> target
  int m_files = 0;
};

} // namespace sandbox::service
