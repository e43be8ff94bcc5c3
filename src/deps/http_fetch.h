#pragma once
// Fetching one file over http(s) for the engine (never for a jail): libcurl
// with connect and total timeouts, a size cap, no protocol but http and https
// (redirects included), and a bounded number of redirects.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>

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

// `url` fit for a message: any userinfo ("user:password@") removed and
// control characters replaced, so a credential never reaches a log.
std::string redact_url(std::string_view url);

// Downloads `url` into `dest` (written to a temporary name beside it, then
// renamed, so `dest` is either whole or absent). Only a 2xx answer is
// accepted. No cookies and no .netrc are used; TLS peers are verified. Proxy
// settings come from the environment as libcurl reads them by default
// (http_proxy, https_proxy, no_proxy), so a mirror behind a proxy is reachable.
std::expected<void, FetchError> fetch_to_file(const std::string& url, const fs::path& dest,
                                              const FetchLimits& limits = {});

} // namespace sandbox::deps
