#pragma once
// mix.lock, read without evaluating it: the file is Elixir data written by
// Mix's formatter (a map of strings to tuples), parsed here by a small reader
// that accepts only literals (maps, tuples, lists, keyword lists, strings,
// atoms, integers, booleans, nil) and refuses anything else, so a lock can
// never run code on the host.

#include <expected>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::deps {

// One requirement of a locked package, as the lock records it:
// {:decimal, "~> 2.0", [hex: :decimal, repo: "hexpm", optional: true]}
struct LockRequirement {
  std::string app;         // "decimal"
  std::string package;     // the `hex:` name, else the app
  std::string requirement; // "~> 2.0"
  std::string repo;        // "hexpm" when absent
  bool optional = false;
};

// {:hex, :jason, "1.4.5", INNER, [:mix], [REQUIREMENTS], "hexpm", OUTER}
struct HexLock {
  std::string app;     // the lock's key
  std::string package; // the tuple's second element
  std::string version;
  std::string inner_checksum; // lower-case hex sha256 (the tarball's CHECKSUM)
  std::vector<std::string> managers;
  std::vector<LockRequirement> requirements;
  std::string repo;           // "hexpm" for the 7-element form
  std::string outer_checksum; // lower-case hex sha256 of the tarball; empty in old locks
};

struct MixLock {
  std::map<std::string, HexLock> hex;
  // Entries of other SCMs (git, path...): app -> the tuple's first atom.
  std::map<std::string, std::string> other;
};

// Parses a mix.lock's text. Errors name the line and what was expected.
std::expected<MixLock, std::string> parse_mix_lock(std::string_view text);

// True when `name` is a valid OTP application name as Mix writes it
// (lower-case letter, then lower-case letters, digits and underscores; at
// most 255 bytes). Lock keys and package names that fail it are refused.
bool valid_app_name(std::string_view name);

} // namespace sandbox::deps
