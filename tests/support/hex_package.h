#pragma once
// Builds Hex package tarballs (format 3) for the tests: the outer tar of
// VERSION, CHECKSUM, metadata.config and contents.tar.gz, as hex_core writes
// it, with knobs to make it hostile or inconsistent, and the mix.lock line
// that pins it.

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox::testing {

namespace fs = std::filesystem;

struct HexFile {
  std::string path; // relative, as stored in contents.tar.gz
  std::string content;
  unsigned mode = 0644;
};

// An entry written verbatim into contents.tar.gz, whatever it holds.
struct HexRawEntry {
  enum class Type { file, directory, symlink, hardlink, char_device, block_device, fifo };
  Type type = Type::file;
  std::string path;
  std::string data; // a file's content, or a link's target
  unsigned mode = 0644;
};

// The usual hostile entries.
inline HexRawEntry hostile_absolute(std::string path = "/tmp/sandbox-hex-absolute")
{
  return {HexRawEntry::Type::file, std::move(path), "absolute\n", 0644};
}
inline HexRawEntry hostile_dot_dot(std::string path = "../escaped")
{
  return {HexRawEntry::Type::file, std::move(path), "escaped\n", 0644};
}
inline HexRawEntry hostile_symlink(std::string path = "lib/link", std::string target = "/etc")
{
  return {HexRawEntry::Type::symlink, std::move(path), std::move(target), 0777};
}
inline HexRawEntry hostile_hardlink(std::string path = "lib/hard",
                                    std::string target = "/etc/passwd")
{
  return {HexRawEntry::Type::hardlink, std::move(path), std::move(target), 0644};
}
inline HexRawEntry hostile_device(std::string path = "lib/null")
{
  return {HexRawEntry::Type::char_device, std::move(path), {}, 0666};
}
inline HexRawEntry hostile_fifo(std::string path = "lib/fifo")
{
  return {HexRawEntry::Type::fifo, std::move(path), {}, 0644};
}

// A requirement, both in metadata.config and in the mix.lock line.
struct HexRequirement {
  std::string app;
  std::string requirement; // "~> 1.0"
  bool optional = false;
};

struct HexPackageSpec {
  std::string name; // the Hex package name
  std::string version;
  std::string app; // empty: the name
  std::vector<std::string> build_tools = {"mix"};
  std::vector<HexRequirement> requirements;
  std::vector<HexFile> files;
  fs::path source_dir;                  // when set, its regular files are added too (recursively)
  std::vector<HexRawEntry> raw_entries; // after the files, in this order

  // Knobs that make the tarball inconsistent.
  std::string tarball_version = "3";                            // the VERSION file
  std::optional<std::string> checksum_file;                     // CHECKSUM instead of the right one
  std::string metadata_name;                                    // names another package when set
  std::string metadata_version;                                 // names another version when set
  std::optional<std::string> metadata_config;                   // replaces metadata.config entirely
  std::vector<std::string> omit_outer;                          // outer entries left out
  std::vector<std::pair<std::string, std::string>> extra_outer; // appended to the outer tar
  bool gzip_contents = true;
  std::optional<std::string> contents_tar_gz; // replaces contents.tar.gz's bytes
};

struct HexPackage {
  fs::path path;
  std::string inner_checksum; // lower-case hex, as mix.lock holds it
  std::string outer_checksum; // lower-case hex
};

namespace hex_detail {

inline std::string sha256_hex(std::string_view data, bool upper = false)
{
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr);
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(digits[digest[i] >> 4]);
    out.push_back(digits[digest[i] & 0xf]);
  }
  return out;
}

// <<"text">> with Erlang's escapes for quotes, backslashes and control bytes.
inline std::string erlang_binary(std::string_view text)
{
  std::string out = "<<\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += "\\" + std::to_string(byte / 64) + std::to_string((byte / 8) % 8) +
             std::to_string(byte % 8);
    } else {
      out.push_back(c);
    }
  }
  return out + "\">>";
}

// A tar in memory, written with libarchive.
class TarWriter {
public:
  explicit TarWriter(bool gzip) : m_archive(archive_write_new())
  {
    archive_write_set_format_pax_restricted(m_archive);
    // Names are stored as the bytes given, whatever the locale.
    archive_write_set_format_option(m_archive, "pax", "hdrcharset", "BINARY");
    if (gzip) {
      archive_write_add_filter_gzip(m_archive);
    } else {
      archive_write_add_filter_none(m_archive);
    }
    archive_write_set_bytes_in_last_block(m_archive, 1);
    archive_write_open(m_archive, &m_data, nullptr, &TarWriter::append, nullptr);
  }
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  ~TarWriter()
  {
    if (m_archive != nullptr) {
      archive_write_free(m_archive);
    }
  }

  bool add(const HexRawEntry& item)
  {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, item.path.c_str());
    archive_entry_set_mtime(entry, 0, 0);
    archive_entry_set_uid(entry, 0);
    archive_entry_set_gid(entry, 0);
    archive_entry_set_perm(entry, static_cast<__LA_MODE_T>(item.mode & 07777));
    bool with_data = false;
    switch (item.type) {
    case HexRawEntry::Type::file:
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_size(entry, static_cast<la_int64_t>(item.data.size()));
      with_data = true;
      break;
    case HexRawEntry::Type::directory: archive_entry_set_filetype(entry, AE_IFDIR); break;
    case HexRawEntry::Type::symlink:
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, item.data.c_str());
      break;
    case HexRawEntry::Type::hardlink:
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_hardlink(entry, item.data.c_str());
      archive_entry_set_size(entry, 0);
      break;
    case HexRawEntry::Type::char_device:
      archive_entry_set_filetype(entry, AE_IFCHR);
      archive_entry_set_rdevmajor(entry, 1);
      archive_entry_set_rdevminor(entry, 3);
      break;
    case HexRawEntry::Type::block_device:
      archive_entry_set_filetype(entry, AE_IFBLK);
      archive_entry_set_rdevmajor(entry, 7);
      archive_entry_set_rdevminor(entry, 0);
      break;
    case HexRawEntry::Type::fifo: archive_entry_set_filetype(entry, AE_IFIFO); break;
    }
    bool ok = archive_write_header(m_archive, entry) == ARCHIVE_OK;
    if (ok && with_data && !item.data.empty()) {
      ok = archive_write_data(m_archive, item.data.data(), item.data.size()) ==
           static_cast<la_ssize_t>(item.data.size());
    }
    archive_entry_free(entry);
    return ok;
  }

  bool add_file(const std::string& path, const std::string& data, unsigned mode = 0644)
  {
    return add({HexRawEntry::Type::file, path, data, mode});
  }

  // The whole archive; the writer is finished afterwards.
  std::optional<std::string> finish()
  {
    bool ok = archive_write_close(m_archive) == ARCHIVE_OK;
    archive_write_free(m_archive);
    m_archive = nullptr;
    if (!ok) {
      return std::nullopt;
    }
    return std::move(m_data);
  }

private:
  static la_ssize_t append(archive*, void* client, const void* buffer, size_t length)
  {
    static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
    return static_cast<la_ssize_t>(length);
  }

  archive* m_archive;
  std::string m_data;
};

inline std::expected<std::vector<HexFile>, std::string> files_of(const fs::path& root)
{
  std::vector<HexFile> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file() || it->is_symlink()) {
      continue;
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    auto perms = static_cast<unsigned>(it->status().permissions()) & 0777;
    files.push_back({it->path().lexically_relative(root).string(), content.str(), perms});
  }
  if (ec) {
    return std::unexpected("cannot list " + root.string() + ": " + ec.message());
  }
  std::sort(files.begin(), files.end(),
            [](const HexFile& a, const HexFile& b) { return a.path < b.path; });
  return files;
}

} // namespace hex_detail

// metadata.config as hex_core writes it: one `{Key, Value}.` term a line.
inline std::string hex_metadata_config(const HexPackageSpec& spec,
                                       const std::vector<HexFile>& files)
{
  using hex_detail::erlang_binary;
  std::string name = spec.metadata_name.empty() ? spec.name : spec.metadata_name;
  std::string version = spec.metadata_version.empty() ? spec.version : spec.metadata_version;
  std::string app = spec.app.empty() ? spec.name : spec.app;
  std::string out;
  out += "{<<\"app\">>," + erlang_binary(app) + "}.\n";
  out += "{<<\"build_tools\">>,[";
  for (std::size_t i = 0; i < spec.build_tools.size(); ++i) {
    out += (i > 0 ? "," : "") + erlang_binary(spec.build_tools[i]);
  }
  out += "]}.\n";
  out += "{<<\"description\">>,<<\"A test package: \\\"quoted\\\", \\\\ and % signs.\">>}.\n";
  out += "{<<\"elixir\">>,<<\"~> 1.11\">>}.\n";
  out += "{<<\"files\">>,\n [";
  for (std::size_t i = 0; i < files.size(); ++i) {
    out += (i > 0 ? ",\n  " : "") + erlang_binary(files[i].path);
  }
  out += "]}.\n";
  out += "{<<\"licenses\">>,[<<\"Apache-2.0\">>]}.\n";
  out += "{<<\"links\">>,[{<<\"GitHub\">>,<<\"https://example.org/x\">>}]}.\n";
  out += "{<<\"name\">>," + erlang_binary(name) + "}.\n";
  out += "{<<\"requirements\">>,[";
  for (std::size_t i = 0; i < spec.requirements.size(); ++i) {
    const auto& r = spec.requirements[i];
    out += (i > 0 ? ",\n  " : "") + std::string("[{<<\"app\">>,") + erlang_binary(r.app) +
           "},{<<\"name\">>," + erlang_binary(r.app) + "},{<<\"optional\">>," +
           (r.optional ? "true" : "false") + "},{<<\"repository\">>,<<\"hexpm\">>}," +
           "{<<\"requirement\">>," + erlang_binary(r.requirement) + "}]";
  }
  out += "]}.\n";
  out += "{<<\"version\">>," + erlang_binary(version) + "}.\n";
  return out;
}

// Writes the tarball to `file` (its directory must exist).
// The spec's files, then its source directory's.
inline std::expected<std::vector<HexFile>, std::string> hex_files(const HexPackageSpec& spec)
{
  std::vector<HexFile> files = spec.files;
  if (!spec.source_dir.empty()) {
    auto copied = hex_detail::files_of(spec.source_dir);
    if (!copied) {
      return std::unexpected(copied.error());
    }
    files.insert(files.end(), copied->begin(), copied->end());
  }
  return files;
}

// contents.tar.gz as the spec's files and entries make it (contents_tar_gz aside).
inline std::expected<std::string, std::string> hex_contents(const HexPackageSpec& spec)
{
  auto files = hex_files(spec);
  if (!files) {
    return std::unexpected(files.error());
  }
  hex_detail::TarWriter contents_writer(spec.gzip_contents);
  for (const auto& f : *files) {
    if (!contents_writer.add_file(f.path, f.content, f.mode)) {
      return std::unexpected("cannot add " + f.path + " to contents.tar.gz");
    }
  }
  for (const auto& raw : spec.raw_entries) {
    if (!contents_writer.add(raw)) {
      return std::unexpected("cannot add " + raw.path + " to contents.tar.gz");
    }
  }
  auto contents = contents_writer.finish();
  if (!contents) {
    return std::unexpected("cannot finish contents.tar.gz");
  }
  return std::move(*contents);
}

inline std::expected<HexPackage, std::string> build_hex_package(const HexPackageSpec& spec,
                                                                const fs::path& file)
{
  auto contents = spec.contents_tar_gz
                      ? std::expected<std::string, std::string>(*spec.contents_tar_gz)
                      : hex_contents(spec);
  if (!contents) {
    return std::unexpected(contents.error());
  }
  auto files = hex_files(spec);
  if (!files) {
    return std::unexpected(files.error());
  }
  std::string metadata = spec.metadata_config.value_or(hex_metadata_config(spec, *files));
  std::string inner = hex_detail::sha256_hex(spec.tarball_version + metadata + *contents, true);
  std::string checksum = spec.checksum_file.value_or(inner);

  std::vector<std::pair<std::string, std::string>> entries = {
      {"VERSION", spec.tarball_version},
      {"CHECKSUM", checksum},
      {"metadata.config", metadata},
      {"contents.tar.gz", *contents},
  };
  hex_detail::TarWriter outer_writer(false);
  for (const auto& [name, data] : entries) {
    if (std::find(spec.omit_outer.begin(), spec.omit_outer.end(), name) != spec.omit_outer.end()) {
      continue;
    }
    if (!outer_writer.add_file(name, data)) {
      return std::unexpected("cannot add " + name + " to the tarball");
    }
  }
  for (const auto& [name, data] : spec.extra_outer) {
    if (!outer_writer.add_file(name, data)) {
      return std::unexpected("cannot add " + name + " to the tarball");
    }
  }
  auto tarball = outer_writer.finish();
  if (!tarball) {
    return std::unexpected("cannot finish the tarball");
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(tarball->data(), static_cast<std::streamsize>(tarball->size()));
  out.close();
  if (!out) {
    return std::unexpected("cannot write " + file.string());
  }
  std::string inner_lower = inner;
  for (auto& c : inner_lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return HexPackage{file, inner_lower, hex_detail::sha256_hex(*tarball)};
}

// The mix.lock line pinning a package, as Mix writes it:
//   "app": {:hex, :package, "version", "inner", [:mix], [reqs], "hexpm", "outer"},
inline std::string mix_lock_line(const std::string& app, const std::string& package,
                                 const std::string& version, const std::string& inner,
                                 const std::string& outer,
                                 const std::vector<HexRequirement>& requirements = {},
                                 const std::vector<std::string>& build_tools = {"mix"})
{
  std::string out =
      "\"" + app + "\": {:hex, :" + package + ", \"" + version + "\", \"" + inner + "\", [";
  for (std::size_t i = 0; i < build_tools.size(); ++i) {
    out += (i > 0 ? ", :" : ":") + build_tools[i];
  }
  out += "], [";
  for (std::size_t i = 0; i < requirements.size(); ++i) {
    const auto& r = requirements[i];
    out += (i > 0 ? ", " : "") + std::string("{:") + r.app + ", \"" + r.requirement +
           "\", [hex: :" + r.app +
           ", repo: \"hexpm\", optional: " + (r.optional ? "true" : "false") + "]}";
  }
  out += "], \"hexpm\", \"" + outer + "\"},";
  return out;
}

// The same for a package built here.
inline std::string mix_lock_line(const HexPackageSpec& spec, const HexPackage& package)
{
  return mix_lock_line(spec.app.empty() ? spec.name : spec.app, spec.name, spec.version,
                       package.inner_checksum, package.outer_checksum, spec.requirements,
                       spec.build_tools);
}

// A whole mix.lock from its lines.
inline std::string mix_lock_text(const std::vector<std::string>& lines)
{
  std::string out = "%{\n";
  for (const auto& line : lines) {
    out += "  " + line + "\n";
  }
  return out + "}\n";
}

} // namespace sandbox::testing
