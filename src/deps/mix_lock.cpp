#include "deps/mix_lock.h"

#include "deps/lock_literals.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

namespace sandbox::deps {

namespace {

using lock_literals::Value;
using lock_literals::read_lock_document;

constexpr std::size_t max_lock_bytes = 4u << 20;
std::unexpected<std::string> entry_error(const Value& at, std::string_view app,
                                         const std::string& message)
{
  return std::unexpected("line " + std::to_string(at.line) + ": " + std::string(app) + ": " +
                         message);
}

bool valid_version(std::string_view version)
{
  if (version.empty() || version.size() > 255) {
    return false;
  }
  for (char c : version) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '+' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> lower_checksum(std::string_view text)
{
  if (text.size() != 64) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(64);
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      out.push_back(c);
    } else if (c >= 'a' && c <= 'f') {
      out.push_back(c);
    } else if (c >= 'A' && c <= 'F') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::expected<LockRequirement, std::string> requirement_of(const Value& value, std::string_view app)
{
  if (value.kind != Value::Kind::tuple || value.items.size() != 3) {
    return entry_error(value, app, "a requirement must be {:app, requirement, options}");
  }
  const auto& name = value.items[0];
  const auto& requirement = value.items[1];
  const auto& options = value.items[2];
  LockRequirement out;
  if (name.kind != Value::Kind::atom || !valid_app_name(name.text)) {
    return entry_error(name, app, "a requirement's app must be a valid app name atom");
  }
  out.app = name.text;
  if (requirement.kind == Value::Kind::string) {
    out.requirement = requirement.text;
  } else if (requirement.kind != Value::Kind::nil) {
    return entry_error(requirement, app,
                       "the requirement of " + out.app + " must be a string or nil");
  }
  if (options.kind != Value::Kind::list) {
    return entry_error(options, app, "the options of " + out.app + " must be a keyword list");
  }
  bool seen_hex = false;
  bool seen_repo = false;
  bool seen_optional = false;
  for (const auto& option : options.items) {
    if (option.kind != Value::Kind::tuple || option.items.size() != 2 ||
        option.items[0].kind != Value::Kind::atom) {
      return entry_error(option, app, "the options of " + out.app + " must be a keyword list");
    }
    const auto& key = option.items[0].text;
    const auto& val = option.items[1];
    auto duplicate = [&](bool& seen) {
      bool was = seen;
      seen = true;
      return was;
    };
    if (key == "hex") {
      if (duplicate(seen_hex)) {
        return entry_error(option, app, "duplicate `hex:` in the options of " + out.app);
      }
      if (val.kind != Value::Kind::atom || !valid_app_name(val.text)) {
        return entry_error(val, app, "`hex:` of " + out.app + " must be a valid package atom");
      }
      out.package = val.text;
    } else if (key == "repo") {
      if (duplicate(seen_repo)) {
        return entry_error(option, app, "duplicate `repo:` in the options of " + out.app);
      }
      if (val.kind != Value::Kind::string || val.text.empty()) {
        return entry_error(val, app, "`repo:` of " + out.app + " must be a non-empty string");
      }
      out.repo = val.text;
    } else if (key == "optional") {
      if (duplicate(seen_optional)) {
        return entry_error(option, app, "duplicate `optional:` in the options of " + out.app);
      }
      if (val.kind != Value::Kind::boolean) {
        return entry_error(val, app, "`optional:` of " + out.app + " must be true or false");
      }
      out.optional = val.text == "true";
    }
    // Other options are Mix's business, not the engine's: kept out, not refused.
  }
  if (out.package.empty()) {
    out.package = out.app;
  }
  if (out.repo.empty()) {
    out.repo = "hexpm";
  }
  return out;
}

std::expected<HexLock, std::string> hex_entry(const std::string& app, const Value& tuple)
{
  const auto& items = tuple.items;
  if (items.size() != 7 && items.size() != 8) {
    return entry_error(tuple, app,
                       "a :hex entry has 7 or 8 elements, this one has " +
                           std::to_string(items.size()));
  }
  HexLock lock;
  lock.app = app;
  if (items[1].kind != Value::Kind::atom || !valid_app_name(items[1].text)) {
    return entry_error(items[1], app, "the package must be a valid package name atom");
  }
  lock.package = items[1].text;
  if (items[2].kind != Value::Kind::string || !valid_version(items[2].text)) {
    return entry_error(items[2], app,
                       "the version must be a string of letters, digits, `.`, `+` and `-`");
  }
  lock.version = items[2].text;
  auto inner = items[3].kind == Value::Kind::string ? lower_checksum(items[3].text) : std::nullopt;
  if (!inner) {
    return entry_error(items[3], app, "the inner checksum must be 64 hex digits");
  }
  lock.inner_checksum = std::move(*inner);
  if (items[4].kind != Value::Kind::list) {
    return entry_error(items[4], app, "the build tools must be a list of atoms");
  }
  for (const auto& manager : items[4].items) {
    if (manager.kind != Value::Kind::atom || !valid_app_name(manager.text)) {
      return entry_error(manager, app, "the build tools must be a list of atoms");
    }
    lock.managers.push_back(manager.text);
  }
  if (items[5].kind != Value::Kind::list) {
    return entry_error(items[5], app, "the requirements must be a list");
  }
  for (const auto& item : items[5].items) {
    auto requirement = requirement_of(item, app);
    if (!requirement) {
      return std::unexpected(requirement.error());
    }
    lock.requirements.push_back(std::move(*requirement));
  }
  if (items[6].kind != Value::Kind::string || items[6].text.empty()) {
    return entry_error(items[6], app, "the repository must be a non-empty string");
  }
  lock.repo = items[6].text;
  if (items.size() == 8) {
    auto outer =
        items[7].kind == Value::Kind::string ? lower_checksum(items[7].text) : std::nullopt;
    if (!outer) {
      return entry_error(items[7], app, "the outer checksum must be 64 hex digits");
    }
    lock.outer_checksum = std::move(*outer);
  }
  return lock;
}

} // namespace

std::expected<MixLock, std::string> parse_mix_lock(std::string_view text)
{
  if (text.size() > max_lock_bytes) {
    return std::unexpected("the lock is larger than " + std::to_string(max_lock_bytes) + " bytes");
  }
  auto document = read_lock_document(text);
  if (!document) {
    return std::unexpected(document.error());
  }
  MixLock lock;
  for (const auto& [key, value] : document->pairs) {
    if ((key.kind != Value::Kind::string && key.kind != Value::Kind::atom) ||
        !valid_app_name(key.text)) {
      return std::unexpected("line " + std::to_string(key.line) +
                             ": a lock key must be a valid app name");
    }
    const auto& app = key.text;
    if (lock.hex.contains(app) || lock.other.contains(app)) {
      return entry_error(key, app, "the app is locked twice");
    }
    if (value.kind != Value::Kind::tuple || value.items.empty() ||
        value.items[0].kind != Value::Kind::atom) {
      return entry_error(value, app, "an entry must be a tuple starting with an atom");
    }
    const auto& scm = value.items[0].text;
    if (scm == "hex") {
      auto entry = hex_entry(app, value);
      if (!entry) {
        return std::unexpected(entry.error());
      }
      lock.hex.emplace(app, std::move(*entry));
    } else {
      lock.other.emplace(app, scm);
    }
  }
  return lock;
}

} // namespace sandbox::deps
