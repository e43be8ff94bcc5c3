#pragma once
// Collecting what a job produced. The job's work directory belongs to code the
// sandbox controls: outputs are copied out without following links, hard
// links are refused, sizes are capped, and anything that is not a .beam or an
// .app file is reported as a suspicious artifact.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

struct ArtifactFinding {
  std::string path;     // relative to the job's work directory
  std::string kind;     // symlink, hard_link, script, executable, special_file, unexpected_file, temp_file, oversized
  std::string severity; // critical, high, medium, low
  std::string message;
};

nlohmann::json to_json(const ArtifactFinding& finding);

struct CollectLimits {
  std::uint64_t max_file_bytes = 64ull << 20;
  std::uint64_t max_total_bytes = 512ull << 20;
  std::size_t max_files = 100'000;
};

struct Collected {
  std::vector<fs::path> beam_files; // copies under out_dir, sorted
  std::vector<fs::path> app_files;
  std::vector<ArtifactFinding> findings;
};

// Copies the .beam and .app files of `output_dirs` (inside `work`) into
// `out_dir`, and checks the whole of `work` for suspicious artifacts.
std::expected<Collected, std::string> collect_outputs(const fs::path& work,
                                                      const std::vector<fs::path>& output_dirs,
                                                      const fs::path& out_dir,
                                                      const CollectLimits& limits = {});

} // namespace sandbox::compiler
