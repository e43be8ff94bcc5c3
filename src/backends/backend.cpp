#include "backends/backend.h"

#include "util/fs.h"

namespace sandbox::backends {

std::unique_ptr<CompilerBackend> make_mix_backend();
std::unique_ptr<CompilerBackend> make_elixirc_backend();
std::unique_ptr<CompilerBackend> make_erlc_backend();

fs::path JobPaths::work_in_job(const fs::path& host) const
{
  return work_job / host.lexically_relative(work_host);
}

JobPaths make_job_paths(const fs::path& sandbox_host, const fs::path& work_host,
                        const jail::ProcessRunner& runner)
{
  JobPaths paths{sandbox_host, work_host, sandbox_host, work_host};
  if (runner.remaps_paths()) {
    // Fixed paths inside the jail make builds reproducible: the BEAMs' debug
    // info and compile info name the same paths whatever the host layout.
    paths.sandbox_job = "/sandbox";
    paths.work_job = "/job";
  }
  return paths;
}

std::unique_ptr<CompilerBackend> make_backend(core::Backend backend)
{
  switch (backend) {
  case core::Backend::mix: return make_mix_backend();
  case core::Backend::elixirc: return make_elixirc_backend();
  case core::Backend::erlc: return make_erlc_backend();
  case core::Backend::in_process: return nullptr;
  }
  return nullptr;
}

std::expected<std::vector<fs::path>, std::string>
find_sources(const fs::path& root, const fs::path& dir, std::string_view extension, bool recursive)
{
  std::vector<fs::path> found;
  std::error_code ec;
  auto base = root / dir;
  auto status = fs::symlink_status(base, ec);
  if (ec || !fs::is_directory(status)) {
    return found; // no such directory: nothing to compile from it
  }
  if (!recursive) {
    for (const auto& entry : fs::directory_iterator(base, ec)) {
      auto st = fs::symlink_status(entry.path(), ec);
      if (!ec && fs::is_regular_file(st) && entry.path().extension() == extension) {
        found.push_back((dir / entry.path().filename()).lexically_normal());
      }
    }
    if (ec) {
      return std::unexpected("cannot list " + base.string() + ": " + ec.message());
    }
    std::sort(found.begin(), found.end());
    return found;
  }
  auto tree = util::list_tree(base);
  if (!tree) {
    return std::unexpected(tree.error());
  }
  for (const auto& entry : *tree) {
    if (entry.type == fs::file_type::regular && entry.relative.extension() == extension) {
      found.push_back((dir / entry.relative).lexically_normal());
    }
  }
  return found;
}

std::string as_argument(const fs::path& relative)
{
  auto text = relative.string();
  return text.starts_with('-') ? "./" + text : text;
}

} // namespace sandbox::backends
