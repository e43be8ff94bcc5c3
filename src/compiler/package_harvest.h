#pragma once
// What one package's jailed build leaves behind, taken into the store: the
// build's ebin and manifests, regular files only, within caps.

#include <expected>
#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::compiler {

namespace fs = std::filesystem;

struct Harvest {
  std::vector<fs::path> beams;
  std::vector<fs::path> apps;
};

// Copies what Mix wrote for one application (ebin and its manifests),
// regular files only, into `target`. Every directory from `work` down to the
// application must be a real directory: the job that wrote them is gone, and a
// link it left is never followed.
std::expected<Harvest, std::string> harvest_build(const fs::path& work, const fs::path& relative,
                                                  const fs::path& target);

// The .beam and .app files of a stored build's ebin.
Harvest stored_ebin(const fs::path& build);

} // namespace sandbox::compiler
