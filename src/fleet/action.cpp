#include "fleet/action.h"

#include "util/fs.h"
#include "util/hash.h"

#include <fmt/format.h>

#include <algorithm>

namespace sandbox::fleet {

namespace {

constexpr std::string_view kMarkerName = ".sandbox-engine-tempdir";
constexpr std::string_view kEnvelopeTag = "sbx1";

bool is_digest(std::string_view text)
{
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::expected<Tree, std::string> read_files(const fs::path& root, std::map<std::string, std::string>& blobs,
                                            bool outputs)
{
  auto listed = util::list_tree(root);
  if (!listed) {
    return std::unexpected(listed.error());
  }
  Tree tree;
  for (const auto& entry : *listed) {
    auto path = entry.relative.generic_string();
    if (outputs && path == kMarkerName) {
      continue;
    }
    if (!safe_relative_path(path)) {
      return std::unexpected(fmt::format("{}: a name the fleet does not carry", path));
    }
    TreeFile file;
    file.path = path;
    if (entry.type == fs::file_type::directory) {
      if (outputs) {
        continue; // directories of outputs follow from their files
      }
      file.kind = 'd';
    } else if (entry.type == fs::file_type::regular) {
      auto content = util::read_file(root / entry.relative, kMaxBlobBytes);
      if (!content) {
        return std::unexpected(content.error());
      }
      file.kind = (entry.mode & 0111) != 0 ? 'x' : 'f';
      file.size = content->size();
      file.digest = util::sha256_hex(*content);
      tree.bytes += file.size;
      blobs.emplace(file.digest, std::move(*content));
    } else {
      return std::unexpected(fmt::format("{}: a {} (the fleet carries files and directories only)", path,
                                         entry.type == fs::file_type::symlink ? "symlink" : "special file"));
    }
    tree.files.push_back(std::move(file));
    if (tree.files.size() > kMaxTreeEntries || tree.bytes > kMaxTreeBytes) {
      return std::unexpected(fmt::format("the tree is past the fleet's caps ({} entries, {} bytes)", kMaxTreeEntries,
                                         kMaxTreeBytes));
    }
  }
  return tree;
}

} // namespace

std::expected<Tree, std::string> read_tree(const fs::path& root, std::map<std::string, std::string>& blobs)
{
  return read_files(root, blobs, false);
}

std::expected<Tree, std::string> read_outputs(const fs::path& temp_dir, std::map<std::string, std::string>& blobs)
{
  return read_files(temp_dir, blobs, true);
}

bool safe_relative_path(std::string_view path)
{
  if (path.empty() || path.size() > 4096 || path.front() == '/' || path.find('\0') != std::string_view::npos) {
    return false;
  }
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    auto part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || part.size() > 255) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

nlohmann::json tree_to_json(const Tree& tree)
{
  auto out = nlohmann::json::array();
  for (const auto& file : tree.files) {
    out.push_back({file.path, std::string(1, file.kind), file.digest, file.size});
  }
  return out;
}

std::expected<Tree, std::string> tree_from_json(const nlohmann::json& value)
{
  if (!value.is_array() || value.size() > kMaxTreeEntries) {
    return std::unexpected("a tree is an array of at most " + std::to_string(kMaxTreeEntries) + " entries");
  }
  Tree tree;
  for (const auto& item : value) {
    if (!item.is_array() || item.size() != 4 || !item[0].is_string() || !item[1].is_string() ||
        !item[2].is_string() || !item[3].is_number_integer() ||
        (!item[3].is_number_unsigned() && item[3].get<std::int64_t>() < 0)) {
      return std::unexpected("a tree entry is [path, kind, digest, size]");
    }
    TreeFile file{item[0].get<std::string>(), 'f', item[2].get<std::string>(), item[3].get<std::uint64_t>()};
    auto kind = item[1].get<std::string>();
    if (!safe_relative_path(file.path) || kind.size() != 1 || std::string_view("fxd").find(kind[0]) == std::string_view::npos) {
      return std::unexpected("a tree entry with an unsafe path or an unknown kind");
    }
    file.kind = kind[0];
    if (file.kind != 'd' && (!is_digest(file.digest) || file.size > kMaxBlobBytes)) {
      return std::unexpected("a tree entry with a malformed digest or past the size cap");
    }
    tree.bytes += file.size;
    if (tree.bytes > kMaxTreeBytes) {
      return std::unexpected("a tree past the fleet's size cap");
    }
    tree.files.push_back(std::move(file));
  }
  return tree;
}

std::expected<void, std::string> write_tree(const Tree& tree, const std::map<std::string, std::string>& blobs,
                                            const fs::path& root)
{
  for (const auto& file : tree.files) {
    if (!safe_relative_path(file.path)) {
      return std::unexpected(file.path + ": an unsafe path");
    }
    fs::path target = root / fs::path(file.path);
    std::error_code ec;
    if (file.kind == 'd') {
      fs::create_directories(target, ec);
      if (ec) {
        return std::unexpected(file.path + ": " + ec.message());
      }
      continue;
    }
    auto blob = blobs.find(file.digest);
    if (blob == blobs.end() || blob->second.size() != file.size || util::sha256_hex(blob->second) != file.digest) {
      return std::unexpected(file.path + ": its content is missing or does not match its digest");
    }
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      return std::unexpected(file.path + ": " + ec.message());
    }
    if (auto written = util::write_new_file(target, blob->second, file.kind == 'x' ? 0755 : 0644); !written) {
      return std::unexpected(written.error());
    }
  }
  return {};
}

std::string action_key(const nlohmann::json& description) { return util::sha256_hex(description.dump()); }

void replace_in_strings(nlohmann::json& value, std::string_view from, std::string_view to)
{
  if (from.empty()) {
    return;
  }
  if (value.is_string()) {
    auto& text = value.get_ref<std::string&>();
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  } else if (value.is_array() || value.is_object()) {
    for (auto& item : value) {
      replace_in_strings(item, from, to);
    }
  }
}

namespace {

std::string mac_input(std::string_view ns, std::string_view kind, std::string_view name, std::string_view body)
{
  std::string text;
  text.reserve(ns.size() + kind.size() + name.size() + body.size() + 3);
  text.append(ns).append("\n").append(kind).append("\n").append(name).append("\n").append(body);
  return text;
}

} // namespace

std::string seal(std::string_view key, std::string_view ns, std::string_view kind, std::string_view name,
                 std::string_view body)
{
  std::string out(kEnvelopeTag);
  out.append(" ").append(util::hmac_sha256_hex(key, mac_input(ns, kind, name, body))).append(" ").append(body);
  return out;
}

std::expected<std::string, std::string> unseal(std::string_view key, std::string_view ns, std::string_view kind,
                                               std::string_view name, std::string_view text)
{
  if (text.size() > kMaxEnvelopeBytes) {
    return std::unexpected("an entry past the size cap");
  }
  constexpr std::size_t header = kEnvelopeTag.size() + 1 + 64 + 1;
  if (text.size() < header || !text.starts_with(kEnvelopeTag) || text[kEnvelopeTag.size()] != ' ' ||
      text[header - 1] != ' ') {
    return std::unexpected("not an entry of this engine");
  }
  auto mac = text.substr(kEnvelopeTag.size() + 1, 64);
  auto body = text.substr(header);
  if (!util::constant_time_equal(mac, util::hmac_sha256_hex(key, mac_input(ns, kind, name, body)))) {
    return std::unexpected("its signature does not verify under the fleet key");
  }
  return std::string(body);
}

} // namespace sandbox::fleet
