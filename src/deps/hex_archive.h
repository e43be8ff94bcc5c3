#pragma once
// Reading a Hex tarball's tar layers with libarchive (opened on first use,
// lazy_libs.h): only the tar format and the filters named, a header at a time,
// entry data within a cap. hex_tarball.cpp decides what the entries mean.

#include "deps/lazy_libs.h"

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sandbox::deps::tarball {

// A check that failed, before it is tied to the lock entry.
struct Failure {
  std::string reason;
  std::string expected;
  std::string actual;
};

template <typename T> using Checked = std::expected<T, Failure>;

inline std::unexpected<Failure> failure(std::string reason, std::string expected = {},
                                        std::string actual = {})
{
  return std::unexpected(Failure{std::move(reason), std::move(expected), std::move(actual)});
}

// The loaded library; only after archive_api() succeeded (open_tar checks).
const ArchiveApi& arc();
// libarchive's message for `a`, made printable.
std::string archive_message(archive* a);

struct ArchiveFree {
  void operator()(archive* a) const;
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

// A reader of `data` (gzip-compressed when `gzip`), tar only.
Checked<ArchivePtr> open_tar(std::string_view data, bool gzip);
// The next header; nothing at the end of the archive.
Checked<archive_entry*> next_entry(archive* a);
// The link and type checks shared by both tars; the message names the entry.
std::optional<Failure> unsafe_type(archive_entry* entry, const std::string& name);
// The data of the current entry, refusing more than `max` bytes whatever
// the header said.
Checked<std::string> read_entry_data(archive* a, std::uint64_t max, const std::string& too_large);

} // namespace sandbox::deps::tarball
