#include "service/caller_scope.h"

#include "service/protocol.h"
#include "util/fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sandbox::service {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void replace_all(std::string& text, const std::string& from, const std::string& to)
{
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

void rename_strings(json& value, const std::vector<std::pair<std::string, std::string>>& renames)
{
  if (value.is_string()) {
    auto text = value.get<std::string>();
    for (const auto& [from, to] : renames) {
      replace_all(text, from, to);
    }
    value = std::move(text);
  } else if (value.is_structured()) {
    for (auto& item : value) {
      rename_strings(item, renames);
    }
  }
}

} // namespace

CallerScope::CallerScope(const Caller& caller)
  : m_caller(caller), m_acting(!caller.privileged() && caller.uid != ::geteuid())
{
}

CallerScope::~CallerScope()
{
  if (m_scratch) {
    (void)util::remove_tree(*m_scratch);
  }
}

void CallerScope::check_options(const core::CompileOptions& options) const
{
  if (m_acting && options.temp_dir) {
    throw Refused{core::InvalidOption{
      "temp_dir", "a shared service makes results in its own temp root and gives them to the caller"}};
  }
  // The service would read a directory mirror with its own rights, not the
  // caller's, and fetch a URL from wherever it runs: another user's packages
  // come from the mirror the operator chose (SANDBOX_PACKAGE_MIRROR).
  if (m_acting && !options.package_mirror.empty()) {
    throw Refused{core::InvalidOption{
      "package_mirror", "a shared service takes packages for other users only from the mirror "
                        "its operator set (SANDBOX_PACKAGE_MIRROR)"}};
  }
  // A prefix would make the service run, as itself, whatever programs a
  // caller's directory holds: other users choose among the toolchains the
  // operator registered.
  if (m_acting && !options.toolchain.empty() && options.toolchain.front() == '/') {
    throw Refused{core::InvalidOption{
      "toolchain", "a shared service runs only the toolchains its operator registered "
                   "(toolchains.conf); name one of them"}};
  }
}

fs::path CallerScope::scratch()
{
  if (!m_scratch) {
    std::string pattern = (util::default_temp_root() / "sandbox-caller-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw Refused{core::JailSetupFailed{"stage", util::errno_message("mkdtemp " + pattern)}};
    }
    m_scratch = pattern;
  }
  return *m_scratch;
}

fs::path CallerScope::scratch_subdir(const std::string& prefix)
{
  auto dir = scratch() / (prefix + std::to_string(m_files++));
  if (::mkdir(dir.c_str(), 0755) != 0) {
    throw Refused{core::JailSetupFailed{"stage", util::errno_message("mkdir " + dir.string())}};
  }
  return dir;
}

fs::path CallerScope::tree(const std::string& path)
{
  if (!m_acting) {
    return path;
  }
  auto mirror = Mirror::sync(m_caller, path);
  if (!mirror) {
    throw Refused{mirror.error()};
  }
  fs::path tree = mirror->tree();
  m_renames.emplace_back(tree.string(), path);
  m_mirrors.push_back(std::move(*mirror));
  return tree;
}

fs::path CallerScope::file(const std::string& path)
{
  if (!m_acting) {
    return path;
  }
  auto dir = scratch_subdir("in");
  auto staged = stage_file(m_caller, path, dir);
  if (!staged) {
    throw Refused{staged.error()};
  }
  m_renames.emplace_back(staged->string(), path);
  auto parent = fs::path(path).parent_path().string();
  m_renames.emplace_back(dir.string() + "/", parent.empty() ? std::string() : parent + "/");
  return *staged;
}

fs::path CallerScope::output(const std::string& target)
{
  if (!m_acting) {
    return target;
  }
  auto dir = scratch_subdir("out");
  m_outputs.emplace_back(dir, target);
  return dir;
}

json CallerScope::finish(json response)
{
  if (!m_acting) {
    return response;
  }
  for (const auto& [made, target] : m_outputs) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(made, ec)) {
      if (entry.is_regular_file(ec) && !entry.is_symlink(ec)) {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    if (response.value("ok", false) || !files.empty()) {
      if (auto delivered = deliver_files(m_caller, files, target); !delivered) {
        return engine_error(delivered.error());
      }
    }
    m_renames.emplace_back(made.string(), target);
  }
  if (auto temp = response.find("temp_dir"); temp != response.end() && temp->is_string()) {
    if (auto given = give_tree(m_caller, temp->get<std::string>()); !given) {
      return engine_error(core::JailSetupFailed{"temp_dir", given.error()});
    }
  }
  // Longest first: a staged file's own name before its directory's.
  std::stable_sort(m_renames.begin(), m_renames.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  rename_strings(response, m_renames);
  return response;
}

} // namespace sandbox::service
