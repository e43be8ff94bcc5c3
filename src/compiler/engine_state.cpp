#include "compiler/engine_state.h"

#include "util/fd.h"
#include "util/fs.h"
#include "util/hash.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace sandbox::compiler {

namespace {

constexpr const char* kMarkerName = ".sandbox-engine-tempdir";
constexpr std::size_t kKeyBytes = 32;

std::string marker_payload(const fs::path& resolved, const struct stat& st)
{
  return fmt::format("tempdir\n{}\n{}\n{}", resolved.string(), static_cast<unsigned long>(st.st_dev),
                     static_cast<unsigned long>(st.st_ino));
}

std::expected<void, std::string> make_dirs_0700(const fs::path& dir)
{
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return std::unexpected("cannot create " + dir.string() + ": " + ec.message());
  }
  ::chmod(dir.c_str(), 0700);
  return {};
}

} // namespace

fs::path state_dir()
{
  return util::engine_state_dir();
}

std::expected<std::string, std::string> engine_key()
{
  static std::expected<std::string, std::string> cached = []() -> std::expected<std::string, std::string> {
    auto dir = state_dir();
    if (auto made = make_dirs_0700(dir); !made) {
      return std::unexpected(made.error());
    }
    auto path = dir / "key";
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto existing = util::read_file(path, 4096);
      if (existing) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
          return std::unexpected(path.string() + " must be owned by this user with mode 0600");
        }
        if (existing->size() != kKeyBytes) {
          return std::unexpected(path.string() + " is not a key of this engine (wrong size)");
        }
        return *existing;
      }
      // Written whole under a private name, then published with link(): a
      // concurrent engine sees no key or a complete one, never a partial one.
      std::string staged = (dir / "key.XXXXXX").string();
      util::Fd fd(::mkostemp(staged.data(), O_CLOEXEC));
      if (!fd) {
        return std::unexpected(util::errno_message("cannot create a key in " + dir.string()));
      }
      auto key = util::random_bytes(kKeyBytes);
      bool written = ::fchmod(fd.get(), 0600) == 0 &&
                     ::write(fd.get(), key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
                     ::fsync(fd.get()) == 0;
      int published = written ? ::link(staged.c_str(), path.c_str()) : -1;
      int error = errno;
      ::unlink(staged.c_str());
      if (published == 0) {
        return key;
      }
      if (written && error == EEXIST) {
        continue; // another engine published its key first: read theirs
      }
      errno = error;
      return std::unexpected(util::errno_message("cannot write " + path.string()));
    }
    return std::unexpected("cannot read or create " + path.string());
  }();
  return cached;
}

std::expected<fs::path, std::string> create_marked_temp_dir(const fs::path& parent)
{
  auto key = engine_key();
  if (!key) {
    return std::unexpected(key.error());
  }
  std::error_code ec;
  auto resolved_parent = fs::canonical(parent, ec);
  if (ec || !fs::is_directory(resolved_parent, ec)) {
    return std::unexpected("temporary directory root " + parent.string() + " is not a directory");
  }
  auto dir = util::TempDir::create(resolved_parent, "sandbox-job-");
  if (!dir) {
    return std::unexpected(dir.error());
  }
  struct stat st {};
  if (::lstat(dir->path().c_str(), &st) != 0) {
    return std::unexpected(util::errno_message("cannot stat " + dir->path().string()));
  }
  auto mac = util::hmac_sha256_hex(*key, marker_payload(dir->path(), st));
  if (auto written = util::write_file_atomic(dir->path() / kMarkerName, mac + "\n", 0600); !written) {
    return std::unexpected(written.error());
  }
  return dir->keep();
}

std::expected<void, std::string> verify_temp_dir_marker(const fs::path& given, std::optional<uid_t> owner)
{
  // "link/" would make lstat follow the link: look at the name itself.
  // "link/" and "link/." would make lstat follow the link: look at the name
  // itself, and refuse spellings that still end in a "." or ".." component.
  std::string text = given.string();
  while (text.size() > 1 && (text.back() == '/' || text.ends_with("/."))) {
    text.erase(text.size() - (text.back() == '/' ? 1 : 2));
  }
  if (text == "." || text == ".." || text.ends_with("/..")) {
    return std::unexpected("give the temporary directory by its own name, not through \".\" or \"..\"");
  }
  const fs::path path(text);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return std::unexpected(util::errno_message("cannot stat " + path.string()));
  }
  if (S_ISLNK(st.st_mode)) {
    return std::unexpected("is a symbolic link");
  }
  if (!S_ISDIR(st.st_mode)) {
    return std::unexpected("is not a directory");
  }
  if (st.st_uid != owner.value_or(::geteuid())) {
    return std::unexpected("is not owned by this user");
  }
  std::error_code ec;
  auto resolved = fs::canonical(path, ec);
  if (ec) {
    return std::unexpected("cannot resolve: " + ec.message());
  }
  auto key = engine_key();
  if (!key) {
    return std::unexpected(key.error());
  }
  auto marker = util::read_file(resolved / kMarkerName, 1024);
  if (!marker) {
    return std::unexpected("has no marker of this engine: not a temporary directory it created");
  }
  auto expected = util::hmac_sha256_hex(*key, marker_payload(resolved, st)) + "\n";
  if (!util::constant_time_equal(*marker, expected)) {
    return std::unexpected("its marker does not verify: not a temporary directory this engine created");
  }
  return {};
}

} // namespace sandbox::compiler
