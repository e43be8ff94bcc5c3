#include "deps/hex_tarball.h"

#include "deps/hex_metadata.h"
#include "deps/hex_archive.h"
#include "deps/lazy_libs.h"

#include "util/fd.h"
#include "util/fs.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

namespace sandbox::deps {

namespace {

std::string lower(std::string_view text)
{
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool is_hex64(std::string_view text)
{
  if (text.size() != 64) {
    return false;
  }
  for (char c : text) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!ok) {
      return false;
    }
  }
  return true;
}

class Sha256 {
public:
  Sha256() : m_ctx(EVP_MD_CTX_new())
  {
    m_ok = m_ctx != nullptr && EVP_DigestInit_ex(m_ctx, EVP_sha256(), nullptr) == 1;
  }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  ~Sha256() { EVP_MD_CTX_free(m_ctx); }

  void update(std::string_view data)
  {
    m_ok = m_ok && EVP_DigestUpdate(m_ctx, data.data(), data.size()) == 1;
  }

  // Lower-case hex, or nothing when OpenSSL failed.
  std::optional<std::string> hex()
  {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (!m_ok || EVP_DigestFinal_ex(m_ctx, digest.data(), &size) != 1) {
      return std::nullopt;
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out.push_back(digits[digest[i] >> 4]);
      out.push_back(digits[digest[i] & 0xf]);
    }
    return out;
  }

private:
  EVP_MD_CTX* m_ctx;
  bool m_ok = false;
};

// ---------------------------------------------------------------------------
// Archives.

using tarball::arc;
using tarball::archive_message;
using tarball::ArchivePtr;
using tarball::Checked;
using tarball::Failure;
using tarball::failure;
using tarball::next_entry;
using tarball::open_tar;
using tarball::read_entry_data;
using tarball::unsafe_type;

struct OuterParts {
  std::string version;
  std::string checksum;
  std::string metadata;
  std::string contents;
};

Checked<OuterParts> read_outer(std::string_view tarball, const UnpackLimits& limits)
{
  auto a = open_tar(tarball, false);
  if (!a) {
    return std::unexpected(a.error());
  }
  OuterParts parts;
  struct Slot {
    const char* name;
    std::string* data;
    std::uint64_t max;
    const char* too_large;
    bool seen = false;
  };
  std::array<Slot, 4> slots{{
      {"VERSION", &parts.version, 64, "unsupported tarball version"},
      {"CHECKSUM", &parts.checksum, 256, "CHECKSUM file too large"},
      {"metadata.config", &parts.metadata, limits.max_metadata_bytes, "metadata too large"},
      {"contents.tar.gz", &parts.contents, limits.max_tarball_bytes, "package too large"},
  }};
  while (true) {
    auto entry = next_entry(a->get());
    if (!entry) {
      return std::unexpected(entry.error());
    }
    if (*entry == nullptr) {
      break;
    }
    const char* raw = arc().entry_pathname(*entry);
    std::string name = raw != nullptr ? raw : "";
    Slot* slot = nullptr;
    for (auto& candidate : slots) {
      if (name == candidate.name) {
        slot = &candidate;
      }
    }
    if (slot == nullptr) {
      return failure("unexpected entry " + printable(name));
    }
    if (slot->seen) {
      return failure("duplicate entry " + name);
    }
    slot->seen = true;
    if (auto bad = unsafe_type(*entry, name)) {
      return std::unexpected(*bad);
    }
    if (arc().entry_filetype(*entry) != AE_IFREG) {
      return failure("unexpected entry type for " + name);
    }
    auto data = read_entry_data(a->get(), slot->max, slot->too_large);
    if (!data) {
      return std::unexpected(data.error());
    }
    *slot->data = std::move(*data);
  }
  for (const auto& slot : slots) {
    if (!slot.seen) {
      return failure(std::string("missing entry ") + slot.name);
    }
  }
  return parts;
}

// ---------------------------------------------------------------------------
// Unpacking contents.tar.gz.

constexpr std::size_t max_path_bytes = 4096;
constexpr std::size_t max_component_bytes = 255;

// Splits an entry's path into components, refusing anything that is not a
// plain relative path: absolute paths, `..`, empty or `.` components,
// control characters. A single trailing `/` (directories) is allowed.
Checked<std::vector<std::string>> safe_components(std::string_view path)
{
  std::string shown = printable(path);
  if (path.empty()) {
    return failure("unsafe entry: empty path");
  }
  if (path.front() == '/') {
    return failure("unsafe entry: absolute path " + shown);
  }
  if (path.size() > max_path_bytes) {
    return failure("unsafe entry: path too long " + printable(path, 80));
  }
  std::string_view rest = path;
  if (rest.back() == '/') {
    rest.remove_suffix(1);
  }
  std::vector<std::string> parts;
  bool unnormalised = false;
  while (true) {
    auto slash = rest.find('/');
    auto part = rest.substr(0, slash);
    if (part == "..") {
      return failure("unsafe entry: .. in " + shown);
    }
    if (part.empty() || part == ".") {
      unnormalised = true;
    }
    if (part.size() > max_component_bytes) {
      return failure("unsafe entry: path too long " + printable(path, 80));
    }
    for (char c : part) {
      auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte == 0x7f) {
        return failure("unsafe entry: control character in " + shown);
      }
    }
    parts.emplace_back(part);
    if (slash == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(slash + 1);
  }
  if (unnormalised) {
    return failure("unsafe entry: unnormalised path " + shown);
  }
  return parts;
}

class Unpacker {
public:
  Unpacker(int root, const UnpackLimits& limits) : m_root(root), m_limits(limits) {}

  Checked<void> run(std::string_view contents)
  {
    auto a = open_tar(contents, true);
    if (!a) {
      return std::unexpected(a.error());
    }
    bool first = true;
    while (true) {
      auto entry = next_entry(a->get());
      if (!entry) {
        return std::unexpected(entry.error());
      }
      // The format says gzip; a plain tar where one is expected is refused
      // rather than guessed at.
      if (std::exchange(first, false) && arc().filter_code(a->get(), 0) != ARCHIVE_FILTER_GZIP) {
        return failure("corrupt archive: contents.tar.gz is not gzip-compressed");
      }
      if (*entry == nullptr) {
        return {};
      }
      auto done = unpack_entry(a->get(), *entry);
      if (!done) {
        return done;
      }
    }
  }

private:
  Checked<void> count_one()
  {
    if (m_count + 1 > m_limits.max_files) {
      return failure("too many files", "<= " + std::to_string(m_limits.max_files));
    }
    ++m_count;
    return {};
  }

  // Opens (creating when absent) the directory `parts[0..count)` below the
  // root, never following a link: every step is openat with O_NOFOLLOW.
  Checked<util::Fd> open_dir(const std::vector<std::string>& parts, std::size_t count,
                             const std::string& shown)
  {
    util::Fd current(::fcntl(m_root, F_DUPFD_CLOEXEC, 0));
    if (!current) {
      return failure("cannot unpack", {}, util::errno_message("dup"));
    }
    for (std::size_t i = 0; i < count; ++i) {
      const auto& part = parts[i];
      bool created = false;
      if (::mkdirat(current.get(), part.c_str(), 0755) == 0) {
        created = true;
        if (auto counted = count_one(); !counted) {
          return std::unexpected(counted.error());
        }
      } else if (errno != EEXIST) {
        return failure("cannot unpack " + shown, {}, util::errno_message("mkdir"));
      }
      util::Fd next(
          ::openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next) {
        return failure("unsafe entry: path crosses a file " + shown);
      }
      if (created && ::fchmod(next.get(), 0755) != 0) {
        return failure("cannot unpack " + shown, {}, util::errno_message("chmod"));
      }
      current = std::move(next);
    }
    return current;
  }

  Checked<void> unpack_entry(archive* a, archive_entry* entry)
  {
    const char* raw = arc().entry_pathname(entry);
    if (raw == nullptr) {
      // A pax UTF-8 name the C locale cannot represent: the bytes as stored.
      raw = arc().entry_pathname_utf8(entry);
    }
    if (raw == nullptr) {
      return failure("unsafe entry: unreadable path");
    }
    std::string path = raw;
    std::string shown = printable(path);
    auto parts = safe_components(path);
    if (!parts) {
      return std::unexpected(parts.error());
    }
    if (auto bad = unsafe_type(entry, shown)) {
      return std::unexpected(*bad);
    }
    if (arc().entry_filetype(entry) == AE_IFDIR) {
      auto dir = open_dir(*parts, parts->size(), shown);
      if (!dir) {
        return std::unexpected(dir.error());
      }
      return {};
    }
    if (path.back() == '/') {
      return failure("unsafe entry: unnormalised path " + shown);
    }
    if (arc().entry_size_is_set(entry) != 0) {
      auto declared =
          static_cast<std::uint64_t>(std::max<la_int64_t>(0, arc().entry_size(entry)));
      if (auto checked = check_size(declared); !checked) {
        return checked;
      }
    }
    auto parent = open_dir(*parts, parts->size() - 1, shown);
    if (!parent) {
      return std::unexpected(parent.error());
    }
    if (auto counted = count_one(); !counted) {
      return counted;
    }
    const auto& name = parts->back();
    util::Fd file(::openat(parent->get(), name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file) {
      if (errno == EEXIST) {
        return failure("duplicate entry " + shown);
      }
      return failure("cannot unpack " + shown, {}, util::errno_message("open"));
    }
    std::uint64_t written = 0;
    std::array<char, 65536> buffer{};
    while (true) {
      la_ssize_t n = arc().read_data(a, buffer.data(), buffer.size());
      if (n < 0) {
        return failure("corrupt archive: " + archive_message(a));
      }
      if (n == 0) {
        break;
      }
      written += static_cast<std::uint64_t>(n);
      m_total += static_cast<std::uint64_t>(n);
      if (written > m_limits.max_file_bytes) {
        return failure("file too large", "<= " + std::to_string(m_limits.max_file_bytes), shown);
      }
      if (m_total > m_limits.max_total_bytes) {
        return failure("package too large", "<= " + std::to_string(m_limits.max_total_bytes));
      }
      std::size_t done = 0;
      while (done < static_cast<std::size_t>(n)) {
        ssize_t w = ::write(file.get(), buffer.data() + done, static_cast<std::size_t>(n) - done);
        if (w < 0) {
          if (errno == EINTR) {
            continue;
          }
          return failure("cannot unpack " + shown, {}, util::errno_message("write"));
        }
        done += static_cast<std::size_t>(w);
      }
    }
    mode_t mode = (arc().entry_perm(entry) & 0111) != 0 ? 0755 : 0644;
    if (::fchmod(file.get(), mode) != 0 || ::close(file.release()) != 0) {
      return failure("cannot unpack " + shown, {}, util::errno_message("close"));
    }
    return {};
  }

  // The header's size, checked before any byte is written; the bytes
  // actually read are counted again while writing.
  Checked<void> check_size(std::uint64_t declared) const
  {
    if (declared > m_limits.max_file_bytes) {
      return failure("file too large", "<= " + std::to_string(m_limits.max_file_bytes),
                     std::to_string(declared) + " bytes");
    }
    if (m_total + declared > m_limits.max_total_bytes) {
      return failure("package too large", "<= " + std::to_string(m_limits.max_total_bytes));
    }
    return {};
  }

  int m_root;
  const UnpackLimits& m_limits;
  std::uint64_t m_count = 0;
  std::uint64_t m_total = 0;
};

Checked<PackageMetadata> verify(std::string_view tarball, const HexLock& lock,
                                const UnpackLimits& limits, OuterParts& parts)
{
  auto outer = [&] {
    Sha256 sha;
    sha.update(tarball);
    return sha.hex();
  }();
  if (!outer) {
    return failure("cannot compute a checksum");
  }
  if (*outer != lower(lock.outer_checksum)) {
    return failure("outer checksum mismatch", lower(lock.outer_checksum), *outer);
  }
  auto read = read_outer(tarball, limits);
  if (!read) {
    return std::unexpected(read.error());
  }
  parts = std::move(*read);
  if (parts.version != "3") {
    return failure("unsupported tarball version", "3", printable(parts.version));
  }
  Sha256 sha;
  sha.update(parts.version);
  sha.update(parts.metadata);
  sha.update(parts.contents);
  auto inner = sha.hex();
  if (!inner) {
    return failure("cannot compute a checksum");
  }
  if (!is_hex64(parts.checksum) || lower(parts.checksum) != *inner) {
    return failure("CHECKSUM file does not match the contents", printable(lower(parts.checksum)),
                   *inner);
  }
  if (*inner != lower(lock.inner_checksum)) {
    return failure("inner checksum mismatch", lower(lock.inner_checksum), *inner);
  }
  auto metadata = read_metadata(parts.metadata);
  if (!metadata) {
    return failure("corrupt metadata.config: " + metadata.error());
  }
  if (metadata->name != lock.package) {
    return failure("metadata names another package", lock.package, printable(metadata->name));
  }
  if (metadata->version != lock.version) {
    return failure("metadata names another version", lock.version, printable(metadata->version));
  }
  if (!valid_app_name(metadata->app)) {
    return failure("metadata has an invalid app name", {}, printable(metadata->app));
  }
  return std::move(*metadata);
}

} // namespace

std::expected<std::string, std::string> sha256_file(const fs::path& file)
{
  util::Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW));
  if (!fd) {
    return std::unexpected(util::errno_message("cannot open " + file.string()));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::unexpected(file.string() + " is not a regular file");
  }
  Sha256 sha;
  std::array<char, 65536> buffer{};
  while (true) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::unexpected(util::errno_message("cannot read " + file.string()));
    }
    if (n == 0) {
      break;
    }
    sha.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
  }
  auto hex = sha.hex();
  if (!hex) {
    return std::unexpected("sha256 failed for " + file.string());
  }
  return *hex;
}

std::expected<PackageMetadata, core::DependencyVerificationFailed>
verify_and_unpack(const fs::path& tarball, const HexLock& lock, const fs::path& dest,
                  const UnpackLimits& limits)
{
  auto refuse = [&](Failure f) {
    return std::unexpected(core::DependencyVerificationFailed{
        lock.app, lock.version, std::move(f.reason), std::move(f.expected), std::move(f.actual)});
  };
  if (lock.outer_checksum.empty()) {
    return refuse({"lock has no outer checksum", {}, {}});
  }
  std::error_code ec;
  auto status = fs::symlink_status(tarball, ec);
  if (ec || status.type() != fs::file_type::regular) {
    return refuse({"cannot read the tarball", {}, ec ? ec.message() : "not a regular file"});
  }
  auto size = fs::file_size(tarball, ec);
  if (!ec && size > limits.max_tarball_bytes) {
    return refuse({"tarball too large", "<= " + std::to_string(limits.max_tarball_bytes) + " bytes",
                   std::to_string(size) + " bytes"});
  }
  auto data = util::read_file(tarball, limits.max_tarball_bytes);
  if (!data) {
    return refuse({"cannot read the tarball", {}, data.error()});
  }
  OuterParts parts;
  auto metadata = verify(*data, lock, limits, parts);
  if (!metadata) {
    return refuse(std::move(metadata.error()));
  }
  data->clear();
  data->shrink_to_fit();

  // Only a directory this call made is ever removed on failure.
  if (::mkdir(dest.c_str(), 0755) != 0) {
    return refuse({errno == EEXIST ? "destination already exists" : "cannot create destination",
                   {},
                   util::errno_message(dest.string())});
  }
  auto cleanup = [&](Failure f) {
    (void)util::remove_tree(dest);
    return refuse(std::move(f));
  };
  util::Fd root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root || ::fchmod(root.get(), 0755) != 0) {
    return cleanup({"cannot create destination", {}, util::errno_message(dest.string())});
  }
  Unpacker unpacker(root.get(), limits);
  if (auto done = unpacker.run(parts.contents); !done) {
    root.reset();
    return cleanup(std::move(done.error()));
  }
  return std::move(*metadata);
}

} // namespace sandbox::deps
