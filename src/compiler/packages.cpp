#include "compiler/packages.h"

#include "compiler/package_closure.h"
#include "compiler/package_harvest.h"
#include "compiler/packages_internal.h"

#include "backends/toolchain.h"
#include "beam/beam.h"
#include "compiler/engine_state.h"
#include "compiler/security_gate.h"
#include "compiler/source_snapshot.h"
#include "deps/hex_tarball.h"
#include "deps/http_fetch.h"
#include "deps/mix_lock.h"
#include "incremental/store.h"
#include "util/fd.h"
#include "util/fs.h"
#include "util/hash.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <functional>
#include <atomic>
#include <set>

namespace sandbox::compiler {

namespace {

using package_files::is_dir;
using package_files::make_dirs;

constexpr std::uint64_t kMaxLockBytes = 4ull << 20;
// Packages and builds kept each; past it the least recently used are removed.
constexpr std::size_t kMaxStoreEntries = 512;

std::string random_suffix()
{
  static std::atomic<std::uint64_t> counter{0};
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return fmt::format("{:x}-{:x}-{:x}", ::getpid(), static_cast<std::uint64_t>(now), ++counter);
}

// Marks an entry as used (pruning removes the least recently used).
void touch(const fs::path& path)
{
  (void)::utimensat(AT_FDCWD, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
}


std::string mirror_of(const core::CompileOptions& options)
{
  if (!options.package_mirror.empty()) {
    return options.package_mirror;
  }
  const char* env = std::getenv("SANDBOX_PACKAGE_MIRROR");
  return env != nullptr ? std::string(env) : std::string();
}

// The digest of a snapshot of the project's config/ (dependencies compile
// under the root project's configuration): each entry's path and type, a
// file's content, a link's target. The builds copy the same snapshot, so what
// the key names is what they used.
std::expected<std::string, std::string> config_digest(const fs::path& snapshot)
{
  if (!is_dir(snapshot)) {
    return std::string("none");
  }
  auto tree = util::list_tree(snapshot);
  if (!tree) {
    return std::unexpected(tree.error());
  }
  std::string all;
  for (const auto& entry : *tree) {
    all += fmt::format("{}\0{}\0", entry.relative.string(), static_cast<int>(entry.type));
    if (entry.type == fs::file_type::regular) {
      auto text = util::read_file(snapshot / entry.relative, 16ull << 20);
      if (!text) {
        return std::unexpected(text.error());
      }
      all += util::sha256_hex(*text);
    } else if (entry.type == fs::file_type::symlink) {
      std::error_code ec;
      all += fs::read_symlink(snapshot / entry.relative, ec).string();
    }
    all += '\n';
  }
  return util::sha256_hex(all);
}

std::string mix_env(const core::CompileOptions& options)
{
  auto found = options.env.find("MIX_ENV");
  return found == options.env.end() ? std::string("dev") : found->second;
}

enum class Obtained { ok, missing };

// The verified, unpacked package in the state directory, fetched once.
std::expected<Obtained, core::Error> obtain_sources(const deps::HexLock& lock,
                                                    const std::string& mirror,
                                                    const fs::path& target)
{
  auto root = packages_root();
  auto held = incremental::SandboxLock::acquire(root, "source-" + lock.outer_checksum);
  if (!held) {
    return std::unexpected(core::JailSetupFailed{"packages", held.error()});
  }
  if (is_dir(target)) {
    return Obtained::ok;
  }
  auto file = fmt::format("{}-{}.tar", lock.package, lock.version);
  fs::path tarball;
  std::optional<util::TempDir> download;
  if (deps::is_http_url(mirror)) {
    auto made = make_dirs(root / "downloads");
    if (!made) {
      return std::unexpected(core::JailSetupFailed{"packages", made.error()});
    }
    auto dir = util::TempDir::create(root / "downloads", "fetch-");
    if (!dir) {
      return std::unexpected(core::JailSetupFailed{"packages", dir.error()});
    }
    download.emplace(std::move(*dir));
    tarball = download->path() / file;
    auto base = mirror;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    auto fetched = deps::fetch_to_file(base + "/tarballs/" + file, tarball);
    if (!fetched) {
      if (fetched.error().failure == deps::FetchFailure::not_found) {
        return Obtained::missing;
      }
      return std::unexpected(core::DependenciesUnavailable{
        {lock.app}, "fetching the package from the mirror failed: " + fetched.error().message});
    }
  } else {
    tarball = fs::path(mirror) / "tarballs" / file;
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(tarball, ec))) {
      return Obtained::missing;
    }
  }
  auto staging = target.parent_path() / (".unpack-" + random_suffix());
  auto unpacked = deps::verify_and_unpack(tarball, lock, staging);
  if (!unpacked) {
    return std::unexpected(unpacked.error());
  }
  std::error_code ec;
  fs::rename(staging, target, ec);
  if (ec) {
    (void)util::remove_tree(staging);
    return std::unexpected(core::JailSetupFailed{"packages", "cannot keep the package: " + ec.message()});
  }
  return Obtained::ok;
}

// Names the dependency in every finding: its files are under deps/APP.
void attribute(std::vector<scan::Finding>& findings, const std::string& app)
{
  for (auto& finding : findings) {
    finding.file = "deps/" + app + "/" + finding.file;
  }
}

core::Error attribute(core::Error error, const std::string& app)
{
  if (auto* threats = std::get_if<core::SecurityThreatsDetected>(&error)) {
    for (auto& threat : threats->threats) {
      if (!threat.is_object()) {
        continue;
      }
      if (threat.contains("file") && threat["file"].is_string()) {
        threat["file"] = "deps/" + app + "/" + threat["file"].get<std::string>();
      }
      threat["dependency"] = app;
    }
  }
  return error;
}

std::string synthetic_project(const std::vector<std::string>& apps)
{
  std::string deps;
  for (const auto& app : apps) {
    deps += fmt::format("{}{{:{}, \">= 0.0.0\"}}", deps.empty() ? "" : ", ", app);
  }
  return fmt::format("defmodule SandboxPackageBuild.MixProject do\n"
                     "  use Mix.Project\n"
                     "  def project do\n"
                     "    [app: :sandbox_package_build, version: \"0.0.0\", deps: [{}]]\n"
                     "  end\n"
                     "end\n",
                     deps);
}

struct BuildContext {
  const fs::path& config; // the request's snapshot of the project's config/
  const core::CompileOptions& options;
  jail::ProcessRunner& runner;
  const std::map<std::string, PreparedPackage>& prepared;
};

// Compiles one package in the jail, alone with the builds of what it needs,
// and keeps the result in the store under its key.
std::expected<std::vector<scan::Finding>, core::Error>
build_package(const BuildContext& context, const std::string& app,
              const std::vector<std::string>& needs, const fs::path& store_entry)
{
  auto parent = context.options.temp_dir.value_or(util::default_temp_root());
  auto temp = util::TempDir::create(parent, "sandbox-package-");
  if (!temp) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", temp.error()});
  }
  auto root = temp->path() / "project";
  auto work = temp->path() / "work";
  for (const auto& dir : {root, work / "home", work / "tmp", work / "ebin", work / "deps",
                          work / "build" / "lib"}) {
    if (auto made = make_dirs(dir); !made) {
      return std::unexpected(core::JailSetupFailed{"temp_dir", made.error()});
    }
  }
  // The job runs as another user when the engine is root: keep it traversable.
  for (const auto& dir : {temp->path(), root, work}) {
    ::chmod(dir.c_str(), 0755);
  }
  std::vector<std::string> apps = needs;
  apps.push_back(app);
  if (auto written = util::write_file_atomic(root / "mix.exs", synthetic_project(apps), 0644);
      !written) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", written.error()});
  }
  if (is_dir(context.config)) {
    if (auto copied = snapshot_tree(context.config, root / "config"); !copied) {
      return std::unexpected(core::JailSetupFailed{"packages", copied.error()});
    }
  }
  std::vector<PreparedPackage> placed;
  for (const auto& name : needs) {
    placed.push_back(context.prepared.at(name));
  }
  if (auto done = place_packages(placed, work); !done) {
    return std::unexpected(core::JailSetupFailed{"packages", done.error()});
  }
  if (auto copied = snapshot_tree(context.prepared.at(app).sources, work / "deps" / app); !copied) {
    return std::unexpected(core::JailSetupFailed{"packages", copied.error()});
  }

  backends::BackendRequest request;
  request.paths = backends::make_job_paths(root, work, context.runner);
  request.options = &context.options;
  request.provided_packages = apps;
  request.packages_only = true;
  auto backend = backends::make_backend(core::Backend::mix);
  auto run = backend->compile(request, context.runner);
  if (!run) {
    return std::unexpected(run.error());
  }

  // Checked before it is shared: the BEAMs parse, and the audit passes.
  auto staging = store_entry.parent_path() / (".build-" + random_suffix());
  auto harvested = harvest_build(work, fs::path("build") / "lib" / app, staging);
  if (!harvested || harvested->beams.empty()) {
    (void)util::remove_tree(staging);
    return std::unexpected(core::CompilerCrash{
      "mix", fmt::format("the package {} produced no BEAM files", app),
      {{"output", run->output}, {"reason", harvested ? std::string() : harvested.error()}}});
  }
  for (const auto& beam_file : harvested->beams) {
    if (auto checked = beam::validate_beam_file(beam_file); !checked) {
      (void)util::remove_tree(staging);
      return std::unexpected(core::BeamValidationFailed{
        "deps/" + app + "/ebin/" + beam_file.filename().string(), checked.error().reason});
    }
  }
  auto audited = security_gate_after(harvested->beams, context.options, harvested->apps);
  if (!audited) {
    (void)util::remove_tree(staging);
    return std::unexpected(attribute(audited.error(), app));
  }
  std::error_code ec;
  fs::rename(staging, store_entry, ec);
  if (ec) {
    (void)util::remove_tree(staging);
    if (!is_dir(store_entry)) {
      return std::unexpected(
        core::JailSetupFailed{"packages", "cannot keep the package build: " + ec.message()});
    }
  }
  // The findings come from the audit every use of the build runs.
  return std::vector<scan::Finding>{};
}

} // namespace

fs::path packages_root()
{
  return state_dir() / "packages";
}

std::expected<PreparedPackages, core::Error>
prepare_packages(const fs::path& sandbox, const std::vector<backends::DeclaredDependency>& declared,
                 const core::CompileOptions& options, jail::ProcessRunner& runner,
                 bool fetch_and_build)
{
  std::vector<std::string> roots;
  for (const auto& dep : declared) {
    if (dep.kind == "hex") {
      roots.push_back(dep.app);
    }
  }
  PreparedPackages out;
  if (roots.empty()) {
    return out;
  }
  if (options.isolation != core::IsolationMode::jail) {
    // Package builds are shared: only a jailed job may make one.
    return std::unexpected(core::InvalidOption{
      "isolation", "Hex dependencies compile only in the jail (isolation: jail): their builds "
                   "are shared with every project that pins the same packages"});
  }
  std::sort(roots.begin(), roots.end());
  roots.erase(std::unique(roots.begin(), roots.end()), roots.end());

  auto lock_path = sandbox / "mix.lock";
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(lock_path, ec))) {
    return std::unexpected(core::DependenciesUnavailable{
      roots, "mix.lock is missing: Hex dependencies compile only when mix.lock pins their "
             "versions and checksums (run `mix deps.get` where Hex is available and keep "
             "mix.lock with the project)"});
  }
  auto text = util::read_file(lock_path, kMaxLockBytes);
  if (!text) {
    return std::unexpected(core::DependenciesUnavailable{roots, "mix.lock: " + text.error()});
  }
  auto lock = deps::parse_mix_lock(*text);
  if (!lock) {
    return std::unexpected(core::DependenciesUnavailable{roots, "mix.lock: " + lock.error()});
  }
  for (const auto& dep : declared) {
    if (dep.kind != "hex") {
      continue;
    }
    auto entry = lock->hex.find(dep.app);
    if (entry != lock->hex.end() && entry->second.package != dep.package) {
      return std::unexpected(core::DependenciesUnavailable{
        {dep.app}, fmt::format("mix.exs asks for the Hex package {} but mix.lock pins {}",
                               dep.package, entry->second.package)});
    }
  }
  auto closure = resolve_closure(*lock, roots);
  if (!closure) {
    return std::unexpected(closure.error());
  }
  for (const auto& app : closure->order) {
    if (lock->hex.at(app).outer_checksum.empty()) {
      return std::unexpected(core::DependencyVerificationFailed{
        app, lock->hex.at(app).version,
        "mix.lock has no outer checksum for this package (a lock written by an old Mix): "
        "run `mix deps.get` with a current Hex to add it",
        "an outer checksum", "none"});
    }
  }

  // Sources: verified once, kept by outer checksum.
  auto root = packages_root();
  for (const auto& dir : {root / "sources", root / "builds"}) {
    if (auto made = make_dirs(dir); !made) {
      return std::unexpected(core::JailSetupFailed{"packages", made.error()});
    }
  }
  auto mirror = mirror_of(options);
  std::map<std::string, PreparedPackage> prepared;
  std::vector<std::string> missing;
  std::vector<std::string> unavailable;
  for (const auto& app : closure->order) {
    const auto& entry = lock->hex.at(app);
    PreparedPackage package{app, entry.package, entry.version, {},
                            root / "sources" / entry.outer_checksum, {}, false};
    if (!is_dir(package.sources)) {
      if (!fetch_and_build) {
        out.complete = false;
        return out;
      }
      if (mirror.empty()) {
        unavailable.push_back(app);
        continue;
      }
      auto obtained = obtain_sources(entry, mirror, package.sources);
      if (!obtained) {
        return std::unexpected(obtained.error());
      }
      if (*obtained == Obtained::missing) {
        missing.push_back(fmt::format("{} ({}-{}.tar)", app, entry.package, entry.version));
        continue;
      }
    }
    touch(package.sources);
    prepared.emplace(app, std::move(package));
  }
  if (!unavailable.empty()) {
    return std::unexpected(core::DependenciesUnavailable{
      unavailable, "no package mirror: give one with --package-mirror DIR|URL (option "
                   "package_mirror, or SANDBOX_PACKAGE_MIRROR); a sandboxed compile never "
                   "reaches a package registry itself"});
  }
  if (!missing.empty()) {
    return std::unexpected(core::DependenciesUnavailable{
      missing, fmt::format("not in the package mirror {} (tarballs/NAME-VERSION.tar)", mirror)});
  }

  // Dependencies are untrusted code: scanned like the project, findings named.
  for (const auto& app : closure->order) {
    auto scanned = security_gate_before(prepared.at(app).sources, {}, options);
    if (!scanned) {
      return std::unexpected(attribute(scanned.error(), app));
    }
    attribute(*scanned, app);
    out.warnings.insert(out.warnings.end(), scanned->begin(), scanned->end());
  }

  // Builds: keyed by everything that can change their BEAMs, compiled once.
  // The project's config/ is read once: the key names the copy the builds use.
  auto parent = options.temp_dir.value_or(util::default_temp_root());
  auto config_temp = util::TempDir::create(parent, "sandbox-package-config-");
  if (!config_temp) {
    return std::unexpected(core::JailSetupFailed{"temp_dir", config_temp.error()});
  }
  auto config_copy = config_temp->path() / "config";
  if (is_dir(sandbox / "config")) {
    if (auto copied = snapshot_tree(sandbox / "config", config_copy); !copied) {
      return std::unexpected(core::InvalidSandboxPath{sandbox.string(), copied.error()});
    }
  }
  auto config = config_digest(config_copy);
  if (!config) {
    return std::unexpected(core::InvalidSandboxPath{sandbox.string(), config.error()});
  }
  // The limits a build ran under can change what its compile-time code did.
  auto limits = nlohmann::json{{"timeout", options.timeout_ms},
                               {"memory_limit", options.memory_limit},
                               {"cpu_limit", options.cpu_limit},
                               {"max_processes", options.max_processes},
                               {"output_limit", options.output_limit}};
  BuildContext context{config_copy, options, runner, prepared};
  auto tools = backends::resolve_toolchain(options.toolchain);
  if (!tools) {
    return std::unexpected(tools.error());
  }
  for (const auto& app : closure->order) {
    auto& package = prepared.at(app);
    const auto& entry = lock->hex.at(app);
    auto needs = needs_of(*closure, app);
    std::string material = fmt::format(
      "sandbox package build 2\ntoolchain {}\nmix_env {}\nenv {}\nlimits {}\nconfig {}\n"
      "package {} {} {} {}\n",
      (*tools)->identity, mix_env(options),
      util::sha256_hex(nlohmann::json(options.env).dump()), limits.dump(), *config, entry.app,
      entry.package, entry.version, entry.outer_checksum);
    for (const auto& dep : closure->deps_of.at(app)) {
      material += fmt::format("needs {} {}\n", dep, prepared.at(dep).key);
    }
    package.key = util::sha256_hex(material);
    package.build = root / "builds" / package.key;
    if (is_dir(package.build)) {
      package.cached = true;
      touch(package.build);
      continue;
    }
    if (!fetch_and_build) {
      out.complete = false;
      return out;
    }
    // Two requests that need the same build: one compiles, the other waits
    // and finds it in the store.
    auto held = incremental::SandboxLock::acquire(root, "build-" + package.key);
    if (!held) {
      return std::unexpected(core::JailSetupFailed{"packages", held.error()});
    }
    if (is_dir(package.build)) {
      package.cached = true;
      continue;
    }
    auto built = build_package(context, app, needs, package.build);
    if (!built) {
      return std::unexpected(built.error());
    }
  }
  // Every use of a build is audited under this request's policy, whoever
  // built it and under which options.
  for (const auto& app : closure->order) {
    auto files = stored_ebin(prepared.at(app).build);
    if (files.beams.empty()) {
      return std::unexpected(core::JailSetupFailed{
        "packages", fmt::format("the stored build of {} is gone or empty", app)});
    }
    auto audited = security_gate_after(files.beams, options, files.apps);
    if (!audited) {
      return std::unexpected(attribute(audited.error(), app));
    }
    attribute(*audited, app);
    out.warnings.insert(out.warnings.end(), audited->begin(), audited->end());
  }
  for (const auto& app : closure->order) {
    out.packages.push_back(prepared.at(app));
  }
  if (std::any_of(out.packages.begin(), out.packages.end(),
                  [](const PreparedPackage& p) { return !p.cached; })) {
    // The least recently used go first; what this request used was just touched.
    (void)bound_package_store(kMaxStoreEntries);
  }
  return out;
}

} // namespace sandbox::compiler
