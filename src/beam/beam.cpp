#include "beam/beam.h"

#include "beam/chunks.h"
#include "util/fd.h"
#include "util/fs.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <new>
#include <optional>

namespace sandbox::beam {

namespace {

using detail::printable;

std::optional<std::string_view> find_chunk(std::string_view bytes, const std::vector<Chunk>& chunks,
                                           std::string_view id)
{
  for (const auto& chunk : chunks) {
    if (chunk.id == id) {
      return bytes.substr(chunk.offset, chunk.size);
    }
  }
  return std::nullopt;
}

std::string hex(const unsigned char* bytes, std::size_t size)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0xf];
  }
  return out;
}

// The module MD5 the VM and beam_lib:md5/1 compute: the significant chunks in
// a fixed order, with each fun's OldUniq zeroed (it is derived from the MD5
// itself). Runs only on a validated file, so FunT is a whole number of
// entries. Returns "" when the crypto library refuses MD5 (FIPS mode).
std::string module_md5(std::string_view bytes, const std::vector<Chunk>& chunks)
{
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  &EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_md5(), nullptr) != 1) {
    return {};
  }
  bool ok = true;
  const auto update = [&](std::string_view data) {
    ok = ok && EVP_DigestUpdate(context.get(), data.data(), data.size()) == 1;
  };
  for (std::string_view id :
       {"Atom", "AtU8", "Code", "StrT", "ImpT", "ExpT", "FunT", "LitT", "Meta"}) {
    auto data = find_chunk(bytes, chunks, id);
    if (!data) {
      continue;
    }
    if (id != "FunT" || data->size() < 4) {
      update(*data);
      continue;
    }
    static constexpr char zero[4] = {};
    update(data->substr(0, 4));
    for (std::size_t at = 4; at + 24 <= data->size(); at += 24) {
      update(data->substr(at, 20));
      update(std::string_view(zero, sizeof zero));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!ok || EVP_DigestFinal_ex(context.get(), digest, &size) != 1) {
    return {};
  }
  return hex(digest, size);
}

std::expected<BeamInfo, BeamError> parse_validated(std::string_view bytes, const Limits& limits)
{
  auto chunks = detail::split_chunks(bytes, limits);
  if (!chunks) {
    return std::unexpected(chunks.error());
  }
  const auto chunk = [&](std::string_view id) { return find_chunk(bytes, *chunks, id); };

  const auto utf8_atoms = chunk("AtU8");
  const auto latin1_atoms = chunk("Atom");
  if (utf8_atoms && latin1_atoms) {
    // The loader would silently pick AtU8; a validator should not guess.
    return std::unexpected(BeamError{"both an AtU8 and a legacy Atom chunk are present"});
  }
  if (!utf8_atoms && !latin1_atoms) {
    return std::unexpected(BeamError{"missing atom table: no AtU8 or Atom chunk"});
  }
  for (std::string_view id : {"Code", "StrT", "ImpT", "ExpT"}) {
    if (!chunk(id)) {
      return std::unexpected(BeamError{"missing required chunk " + std::string(id)});
    }
  }

  BeamInfo info;
  auto atoms = utf8_atoms ? detail::parse_atom_table("AtU8", *utf8_atoms, true, limits)
                          : detail::parse_atom_table("Atom", *latin1_atoms, false, limits);
  if (!atoms) {
    return std::unexpected(atoms.error());
  }
  info.atoms = std::move(*atoms);
  info.module = info.atoms.front();

  auto code = detail::parse_code_chunk(*chunk("Code"));
  if (!code) {
    return std::unexpected(code.error());
  }
  auto imports = detail::parse_import_table(*chunk("ImpT"), info.atoms);
  if (!imports) {
    return std::unexpected(imports.error());
  }
  info.imports = std::move(*imports);
  auto exports = detail::parse_export_table("ExpT", *chunk("ExpT"), info.atoms, code->label_count);
  if (!exports) {
    return std::unexpected(exports.error());
  }
  info.exports = std::move(*exports);
  if (auto data = chunk("LocT")) {
    auto locals = detail::parse_export_table("LocT", *data, info.atoms, code->label_count);
    if (!locals) {
      return std::unexpected(locals.error());
    }
    info.locals = std::move(*locals);
  }
  if (auto data = chunk("FunT")) {
    if (auto funs = detail::check_fun_table(*data, info.atoms.size(), code->label_count); !funs) {
      return std::unexpected(funs.error());
    }
  }
  if (auto data = chunk("LitT")) {
    auto literals = detail::parse_literal_table(*data, limits);
    if (!literals) {
      return std::unexpected(literals.error());
    }
    info.literal_count = *literals;
  }
  info.md5 = module_md5(bytes, *chunks);
  info.chunks = std::move(*chunks);
  return info;
}

std::string file_type_name(mode_t mode)
{
  if (S_ISDIR(mode)) {
    return "a directory";
  }
  if (S_ISFIFO(mode)) {
    return "a FIFO";
  }
  if (S_ISSOCK(mode)) {
    return "a socket";
  }
  if (S_ISCHR(mode) || S_ISBLK(mode)) {
    return "a device";
  }
  return "not a regular file";
}

// util::read_file follows symlinks and would block opening a FIFO, so BEAM
// files are read here: lstat first (a device or FIFO is never opened), then
// open with O_NOFOLLOW and check the descriptor is the inode lstat saw.
std::expected<std::string, BeamError> read_beam_bytes(const std::filesystem::path& path,
                                                      std::uint64_t max_bytes)
{
  const auto fail = [](std::string reason) {
    return std::unexpected(BeamError{std::move(reason)});
  };
  struct stat before {};
  if (::lstat(path.c_str(), &before) != 0) {
    return fail(util::errno_message("cannot stat the file"));
  }
  if (S_ISLNK(before.st_mode)) {
    return fail("the path is a symbolic link; BEAM files are never read through links");
  }
  if (!S_ISREG(before.st_mode)) {
    return fail("the path is " + file_type_name(before.st_mode) + ", not a regular file");
  }
  if (static_cast<std::uint64_t>(before.st_size) > max_bytes) {
    return fail("file is " + std::to_string(before.st_size) + " bytes, more than the limit of " +
                std::to_string(max_bytes));
  }
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    if (errno == ELOOP) {
      return fail("the path is a symbolic link; BEAM files are never read through links");
    }
    return fail(util::errno_message("cannot open the file"));
  }
  struct stat opened {};
  if (::fstat(fd.get(), &opened) != 0) {
    return fail(util::errno_message("cannot stat the open file"));
  }
  if (!S_ISREG(opened.st_mode) || opened.st_dev != before.st_dev ||
      opened.st_ino != before.st_ino) {
    return fail("the file was replaced while it was being opened");
  }
  std::string data;
  data.reserve(static_cast<std::size_t>(opened.st_size));
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail(util::errno_message("cannot read the file"));
    }
    if (n == 0) {
      break;
    }
    if (static_cast<std::uint64_t>(n) > max_bytes - data.size()) {
      return fail("file grew past the limit of " + std::to_string(max_bytes) + " bytes");
    }
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

} // namespace

std::expected<BeamInfo, BeamError> parse_beam(std::string_view bytes, const Limits& limits)
{
  // Input-driven failures are returned, never thrown, and every allocation is
  // bounded by `limits`; this only keeps a std::bad_alloc under memory
  // pressure from unwinding into callers that expect a result.
  try {
    return parse_validated(bytes, limits);
  } catch (const std::bad_alloc&) {
    return std::unexpected(BeamError{"out of memory while parsing the BEAM file"});
  } catch (const std::exception& e) {
    return std::unexpected(BeamError{std::string("internal error while parsing: ") + e.what()});
  }
}

std::expected<BeamInfo, BeamError> validate_beam_file(const std::filesystem::path& path,
                                                      const Limits& limits)
{
  try {
    const auto file_name = path.filename().string();
    if (path.extension() != ".beam") {
      return std::unexpected(
          BeamError{"file name " + printable(file_name) + " does not end in .beam"});
    }
    auto bytes = read_beam_bytes(path, limits.max_file_bytes);
    if (!bytes) {
      return std::unexpected(bytes.error());
    }
    auto info = parse_beam(*bytes, limits);
    if (!info) {
      return std::unexpected(info.error());
    }
    const auto expected_module = path.stem().string();
    if (info->module != expected_module) {
      return std::unexpected(BeamError{"module '" + printable(info->module) +
                                       "' does not match the file name " + printable(file_name) +
                                       " (expected module '" + printable(expected_module) + "')"});
    }
    return info;
  } catch (const std::bad_alloc&) {
    return std::unexpected(BeamError{"out of memory while reading the BEAM file"});
  }
}

} // namespace sandbox::beam
