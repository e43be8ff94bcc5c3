#include "deps/hex_archive.h"

#include "deps/hex_metadata.h"

#include <array>

namespace sandbox::deps::tarball {

const ArchiveApi& arc() { return **archive_api(); }

std::string archive_message(archive* a)
{
  const char* message = arc().error_string(a);
  return message != nullptr ? printable(message) : std::string("unreadable data");
}

void ArchiveFree::operator()(archive* a) const
{
  arc().read_free(a);
}

Checked<ArchivePtr> open_tar(std::string_view data, bool gzip)
{
  if (auto loaded = archive_api(); !loaded) {
    return failure("the tar reader is unavailable", {}, loaded.error());
  }
  ArchivePtr a(arc().read_new());
  if (!a) {
    return failure("corrupt archive: cannot allocate a reader");
  }
  // Only the tar format and only the filters named: no other format or
  // compression is ever attempted on untrusted bytes, and no external
  // decompressor program may be started (filter setup must be ARCHIVE_OK).
  if (arc().read_support_format_tar(a.get()) != ARCHIVE_OK ||
      (gzip ? arc().read_support_filter_gzip(a.get())
            : arc().read_support_filter_none(a.get())) != ARCHIVE_OK) {
    return failure("corrupt archive: the tar reader is unavailable", {}, archive_message(a.get()));
  }
  if (arc().read_open_memory(a.get(), data.data(), data.size()) != ARCHIVE_OK) {
    return failure("corrupt archive: " + archive_message(a.get()));
  }
  return a;
}

Checked<archive_entry*> next_entry(archive* a)
{
  archive_entry* entry = nullptr;
  int status = arc().read_next_header(a, &entry);
  if (status == ARCHIVE_EOF) {
    return nullptr;
  }
  // ARCHIVE_WARN covers names that do not convert to the locale's charset;
  // the name is still read and checked byte by byte below.
  if (status != ARCHIVE_OK && status != ARCHIVE_WARN) {
    return failure("corrupt archive: " + archive_message(a));
  }
  return entry;
}

std::optional<Failure> unsafe_type(archive_entry* entry, const std::string& name)
{
  if (arc().entry_hardlink(entry) != nullptr) {
    return Failure{"unsafe entry: hard link " + name, {}, {}};
  }
  switch (arc().entry_filetype(entry)) {
  case AE_IFREG:
  case AE_IFDIR: return std::nullopt;
  case AE_IFLNK: return Failure{"unsafe entry: symlink " + name, {}, {}};
  case AE_IFCHR:
  case AE_IFBLK:
  case AE_IFIFO: return Failure{"unsafe entry: device or fifo " + name, {}, {}};
  case AE_IFSOCK: return Failure{"unsafe entry: socket " + name, {}, {}};
  default: return Failure{"unsafe entry: unknown type " + name, {}, {}};
  }
}

Checked<std::string> read_entry_data(archive* a, std::uint64_t max, const std::string& too_large)
{
  std::string out;
  std::array<char, 65536> buffer{};
  while (true) {
    la_ssize_t n = arc().read_data(a, buffer.data(), buffer.size());
    if (n < 0) {
      return failure("corrupt archive: " + archive_message(a));
    }
    if (n == 0) {
      return out;
    }
    if (out.size() + static_cast<std::uint64_t>(n) > max) {
      return failure(too_large, "<= " + std::to_string(max) + " bytes");
    }
    out.append(buffer.data(), static_cast<std::size_t>(n));
  }
}

} // namespace sandbox::deps::tarball
