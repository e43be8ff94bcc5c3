#include "compiler/artifacts.h"

#include "util/fd.h"
#include "util/fs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>

namespace sandbox::compiler {

namespace {

bool has_script_extension(const fs::path& path)
{
  static constexpr std::array extensions = {".sh", ".bash", ".bat", ".cmd", ".exe", ".ps1",
                                            ".so", ".dll", ".dylib", ".py", ".pl", ".rb"};
  auto ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(extensions.begin(), extensions.end(), ext) != extensions.end();
}

// Mix links a project's priv/ and include/ into its build directory.
bool is_mix_build_link(const fs::path& relative)
{
  auto parts = std::vector<fs::path>(relative.begin(), relative.end());
  return parts.size() == 4 && parts[0] == "build" && parts[1] == "lib" &&
         (parts[3] == "priv" || parts[3] == "include");
}

// Copies one regular file without following links and refuses hard links.
std::expected<std::uint64_t, ArtifactFinding> copy_output(const fs::path& work,
                                                          const fs::path& source,
                                                          const fs::path& target,
                                                          std::uint64_t max_bytes)
{
  auto relative = source.lexically_relative(work).string();
  util::Fd fd(::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::unexpected(ArtifactFinding{relative, "special_file", "high", "output is not a regular file; not collected"});
  }
  if (st.st_nlink > 1) {
    return std::unexpected(ArtifactFinding{relative, "hard_link", "high", "output is a hard link to another file; not collected"});
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return std::unexpected(ArtifactFinding{relative, "oversized", "medium", fmt::format("output is larger than {} bytes; not collected", max_bytes)});
  }
  fd.reset();
  auto data = util::read_file(source, max_bytes);
  if (!data) {
    return std::unexpected(ArtifactFinding{relative, "special_file", "high", data.error()});
  }
  if (auto written = util::write_file_replace(target, *data, 0644); !written) {
    return std::unexpected(ArtifactFinding{relative, "special_file", "medium", written.error()});
  }
  return data->size();
}

} // namespace

nlohmann::json to_json(const ArtifactFinding& finding)
{
  return {{"path", finding.path}, {"kind", finding.kind}, {"severity", finding.severity}, {"message", finding.message}};
}

std::expected<Collected, std::string> collect_outputs(const fs::path& work,
                                                      const std::vector<fs::path>& output_dirs,
                                                      const fs::path& out_dir,
                                                      const CollectLimits& limits)
{
  Collected collected;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    return std::unexpected("cannot create " + out_dir.string() + ": " + ec.message());
  }
  auto tree = util::list_tree(work);
  if (!tree) {
    return std::unexpected(tree.error());
  }
  if (tree->size() > limits.max_files) {
    collected.findings.push_back({".", "oversized", "high", fmt::format("the job left more than {} files", limits.max_files)});
  }
  // Outputs are flattened into one directory: where two output directories
  // hold the same name, the earlier directory (the project's own) wins.
  struct Candidate {
    std::size_t dir_index;
    fs::path path;
  };
  std::vector<Candidate> candidates;
  std::uint64_t total = 0;
  for (const auto& entry : *tree) {
    auto absolute = work / entry.relative;
    auto rel = entry.relative.string();
    auto dir_it = std::find(output_dirs.begin(), output_dirs.end(), absolute.parent_path());
    bool in_output = dir_it != output_dirs.end();
    if (entry.type == fs::file_type::symlink) {
      if (!is_mix_build_link(entry.relative)) {
        collected.findings.push_back({rel, "symlink", "high", "symbolic link left by the job; never followed"});
      }
      continue;
    }
    if (entry.type == fs::file_type::directory) {
      continue;
    }
    if (entry.type != fs::file_type::regular) {
      collected.findings.push_back({rel, "special_file", "high", "device, fifo or socket left by the job"});
      continue;
    }
    if (has_script_extension(entry.relative)) {
      collected.findings.push_back({rel, "script", "high", "script or executable file produced by the compile"});
      continue;
    }
    if ((entry.mode & 0111) != 0) {
      collected.findings.push_back({rel, "executable", "high", "file with an executable bit produced by the compile"});
      continue;
    }
    auto ext = entry.relative.extension();
    if (in_output && (ext == ".beam" || ext == ".app")) {
      candidates.push_back({static_cast<std::size_t>(dir_it - output_dirs.begin()), absolute});
      continue;
    }
    if (in_output) {
      collected.findings.push_back({rel, "unexpected_file", "medium", "file in an output directory that is neither .beam nor .app"});
    } else if (entry.relative.begin() != entry.relative.end() && *entry.relative.begin() == "tmp") {
      collected.findings.push_back({rel, "temp_file", "low", "file left in the job's tmp/ directory"});
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.dir_index < b.dir_index; });
  for (const auto& candidate : candidates) {
    if (collected.beam_files.size() + collected.app_files.size() >= limits.max_files) {
      break;
    }
    auto target = out_dir / candidate.path.filename();
    auto& list = candidate.path.extension() == ".beam" ? collected.beam_files : collected.app_files;
    if (std::find(list.begin(), list.end(), target) != list.end()) {
      collected.findings.push_back({candidate.path.lexically_relative(work).string(), "duplicate",
                                    "medium",
                                    "another output directory already produced this file name; "
                                    "the first one is kept"});
      continue;
    }
    auto copied = copy_output(work, candidate.path, target, limits.max_file_bytes);
    if (!copied) {
      collected.findings.push_back(copied.error());
      continue;
    }
    total += *copied;
    if (total > limits.max_total_bytes) {
      return std::unexpected(fmt::format("outputs exceed {} bytes in total", limits.max_total_bytes));
    }
    list.push_back(target);
  }
  std::sort(collected.beam_files.begin(), collected.beam_files.end());
  std::sort(collected.app_files.begin(), collected.app_files.end());
  return collected;
}

} // namespace sandbox::compiler
