#pragma once
// Kept copies of sandboxes for the warm workers of a long-running engine.
// A partial compile on a warm worker needs the sandbox at /sandbox and the
// previous BEAMs of the modules it does not recompile at /prior/beams; copying
// a 400-file tree and 400 BEAMs for every one-line edit costs more than the
// compile. The engine keeps, per sandbox, the copy the last job used: the
// next job's copy is made by copying only the entries whose lstat identity
// (type, size, mtime, ctime, inode) changed, or that changed too close to
// when they were copied to be told apart (2 s, as tree_stamps.h), and only
// the BEAMs whose SHA-256 changed. The copy is moved into the worker's
// directories (renames), which the jail binds read-only, and moved back out
// before the worker serves anyone else, so a job can neither alter it nor
// see another sandbox's.
//
// Copies live in <temp root>/sandbox-mirrors-<pid>-XXXXXX (0700), at most
// kMaxMirrors of them (least recently used go first); they are removed when
// the engine stops, and those of an engine that was killed by the next one.
// Without enable_source_mirrors (a one-shot command) every job gets fresh
// copies, as before.

#include "compiler/in_process_compiler.h"

#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

void enable_source_mirrors();
void disable_source_mirrors();
std::size_t kept_source_mirrors(); // parked now

struct Mirror; // one sandbox's kept copy, parked or lent

// A sandbox's copy lent to one job: filled into a worker's empty directories
// by lend_sources, returned (moved back and parked) by give_back or, failing
// that, by the destructor, which removes what it cannot park.
class LentSources {
public:
  LentSources() = default;
  LentSources(LentSources&&) noexcept;
  LentSources& operator=(LentSources&&) = delete;
  LentSources(const LentSources&) = delete;
  LentSources& operator=(const LentSources&) = delete;
  ~LentSources();

  // Moves the copy out of the worker's directories and parks it for the
  // sandbox's next job; the directories are empty afterwards.
  void give_back();
  // Entries copied (not reused) for this job: sources and BEAMs.
  [[nodiscard]] std::size_t copied() const { return m_copied; }
  [[nodiscard]] bool reused() const { return m_reused; }

private:
  friend std::expected<LentSources, std::string> lend_sources(const std::string&, const fs::path&, const fs::path&,
                                                              const fs::path&, const std::vector<PriorBeam>&);
  std::unique_ptr<Mirror> m_mirror;
  fs::path m_sandbox_host;
  fs::path m_prior_host;
  std::size_t m_copied = 0;
  bool m_reused = false;
};

// Fills `sandbox_host` (empty) with the tree at `source` and, when `prior`
// is not empty, `prior_host`/beams with `prior`, from the sandbox's kept copy
// when there is one. `key` names the sandbox (its resolved path).
std::expected<LentSources, std::string> lend_sources(const std::string& key, const fs::path& source,
                                                     const fs::path& sandbox_host, const fs::path& prior_host,
                                                     const std::vector<PriorBeam>& prior);

} // namespace sandbox::compiler
