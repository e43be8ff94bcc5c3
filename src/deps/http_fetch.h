#pragma once
// Fetching one file over http(s) for the engine (never for a jail): libcurl
// with connect and total timeouts, a size cap, no protocol but http and https
// (redirects included), and a bounded number of redirects.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>

namespace sandbox::deps {

namespace fs = std::filesystem;

struct FetchLimits {
  std::int64_t connect_timeout_ms = 10'000;
  std::int64_t total_timeout_ms = 120'000;
  std::uint64_t max_bytes = 64ull << 20;
  long max_redirects = 5;
};

enum class FetchFailure {
  not_found,   // the server answered 404 or 410
  refused,     // a bad URL, a scheme other than http/https, a redirect to one
  too_large,   // past max_bytes (announced or received)
  timeout,
  http_error,  // any other status >= 400
  network,     // DNS, connection, TLS
  local_io,    // the destination could not be written
};

struct FetchError {
  FetchFailure failure;
  std::string message; // for people: what, where, why
};

// True for "http://..." and "https://..." URLs (case-insensitive scheme).
bool is_http_url(std::string_view text);

// Downloads `url` into `dest` (written to a temporary name beside it, then
// renamed, so `dest` is either whole or absent).
std::expected<void, FetchError> fetch_to_file(const std::string& url, const fs::path& dest,
                                              const FetchLimits& limits = {});

} // namespace sandbox::deps
