#pragma once
// Hex dependencies of a Mix project (docs/dependencies.md). mix.lock is the
// truth: every package Mix resolves must be pinned there. The engine, never a
// jail, takes each package from the package mirror, checks it against the
// lock and unpacks it into its state directory; then each package is compiled
// in the jail on its own, in dependency order, as untrusted code, and its
// build is kept in a content-addressed store keyed by everything that can
// change its BEAMs. A project whose packages are all in the store compiles
// none of them.

#include "backends/backend.h"
#include "core/error.h"
#include "core/options.h"
#include "jail/process.h"
#include "scan/findings.h"

#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

struct PreparedPackage {
  std::string app;
  std::string package;
  std::string version;
  std::string key;  // the build's key in the store
  fs::path sources; // verified, unpacked package (state directory)
  fs::path build;   // the compiled application: ebin/ and .mix/ (state directory)
  bool cached = false; // the build was in the store before this request
};

struct PreparedPackages {
  // False when only what the engine already has was allowed and something
  // was missing (a package to fetch or a build to make).
  bool complete = true;
  std::vector<PreparedPackage> packages; // in dependency order
  std::vector<scan::Finding> warnings;   // low-severity scan and audit findings, per dependency
};

// <state_dir>/packages: sources/, builds/, locks/.
fs::path packages_root();

// Resolves the Hex dependencies Mix reported (`declared`, kind hex) against
// the sandbox's mix.lock, fetches and verifies what is missing, and compiles
// every package whose build is not in the store. Errors:
// dependencies_unavailable (no lock, not pinned, not in the mirror, no
// mirror), dependency_verification_failed, security_threats_detected (naming
// the dependency), or the compile error of the package that failed.
// With `fetch_and_build` false nothing is fetched and no job runs: a package
// not yet verified or a build not yet in the store makes the result
// incomplete.
std::expected<PreparedPackages, core::Error>
prepare_packages(const fs::path& sandbox, const std::vector<backends::DeclaredDependency>& declared,
                 const core::CompileOptions& options, jail::ProcessRunner& runner,
                 bool fetch_and_build = true);

// Copies the packages into a job's work directory: deps/APP (sources) and
// build/lib/APP (the compiled application), where Mix finds them.
std::expected<void, std::string> place_packages(const std::vector<PreparedPackage>& packages,
                                                const fs::path& work);

// The same while the job runs in `work` and waits for them: nothing the job
// can change between a check and a write is trusted. The packages are staged
// in `staging` (the engine's, never bound into a jail), given to the work
// directory's owner, and moved in with renameat through directories opened
// without following links; an existing deps/APP or build/lib/APP, a link in
// their place or any other surprise fails, and the caller falls back to
// placing them after the job ends.
std::expected<void, std::string> place_packages_live(const std::vector<PreparedPackage>& packages,
                                                     const fs::path& work,
                                                     const fs::path& staging);

// What `sandbox cache` reports and prunes: the package store.
struct PackageStoreStats {
  std::uint64_t sources = 0;
  std::uint64_t builds = 0;
  std::uint64_t bytes = 0;
};
PackageStoreStats package_store_stats();
// Removes every package build and unpacked package not used for `max_age`
// seconds (0: all of them); returns how many entries were removed.
std::uint64_t prune_package_store(std::int64_t max_age_seconds);
// Keeps the `keep` most recently used packages and builds, removing the rest;
// a compile that adds to the store calls it with 512.
std::uint64_t bound_package_store(std::size_t keep);

} // namespace sandbox::compiler
