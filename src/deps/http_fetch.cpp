#include "deps/http_fetch.h"

#include "deps/lazy_libs.h"

#include "util/fd.h"
#include "util/fs.h"
#include "util/hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>

namespace sandbox::deps {

namespace {

#ifdef SANDBOX_VERSION
constexpr const char* k_user_agent = "sandbox/" SANDBOX_VERSION;
#else
constexpr const char* k_user_agent = "sandbox/0.1.0";
#endif

bool starts_with_nocase(std::string_view text, std::string_view prefix)
{
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(a) == lower(b);
         });
}

// The loaded library; only after curl_api() succeeded.
const CurlApi& lib() { return **curl_api(); }

// curl_global_init is not thread-safe and must run once before any handle.
CURLcode global_init()
{
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = lib().global_init(CURL_GLOBAL_DEFAULT); });
  return result;
}

struct CurlDeleter {
  void operator()(CURL* curl) const noexcept { lib().easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

// The temporary file beside the destination; removed unless committed.
class TempFile {
public:
  explicit TempFile(fs::path path) : m_path(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile()
  {
    m_fd.reset();
    if (!m_path.empty()) {
      ::unlink(m_path.c_str());
    }
  }

  bool open()
  {
    m_fd.reset(::open(m_path.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644));
    return m_fd.valid();
  }
  [[nodiscard]] int fd() const noexcept { return m_fd.get(); }
  [[nodiscard]] const fs::path& path() const noexcept { return m_path; }
  util::Fd& handle() noexcept { return m_fd; }
  void committed() noexcept { m_path.clear(); }

private:
  fs::path m_path;
  util::Fd m_fd;
};

// What the write callback saw, for telling the causes of CURLE_WRITE_ERROR apart.
struct Transfer {
  CURL* curl = nullptr;
  int fd = -1;
  std::uint64_t max_bytes = 0;
  std::uint64_t received = 0;
  bool too_large = false;
  bool bad_status = false;
  int write_errno = 0;
};

bool success_status(long status)
{
  return status >= 200 && status < 300;
}

std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user)
{
  auto& t = *static_cast<Transfer*>(user);
  std::size_t n = size * count;
  // An error page is not the file: stop at once instead of downloading it.
  long status = 0;
  lib().easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
  if (!success_status(status)) {
    t.bad_status = true;
    return 0;
  }
  // MAXFILESIZE only trusts an announced length; a server may send more than
  // it announced, or announce nothing (chunked, or ended by closing).
  if (n > t.max_bytes - t.received) {
    t.too_large = true;
    return 0;
  }
  t.received += n;
  for (std::size_t done = 0; done < n;) {
    ssize_t w = ::write(t.fd, data + done, n - done);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      t.write_errno = errno;
      return 0;
    }
    done += static_cast<std::size_t>(w);
  }
  return n;
}

FetchError failure(FetchFailure kind, const std::string& url, const std::string& why)
{
  return FetchError{kind, "cannot fetch " + redact_url(url) + ": " + why};
}

std::string random_suffix()
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : util::random_bytes(8)) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

std::string curl_reason(CURLcode rc, const char* detail)
{
  return *detail != '\0' ? std::string(detail) : std::string(lib().easy_strerror(rc));
}

std::string where_redirected(CURL* curl)
{
  char* target = nullptr;
  if (lib().easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &target) == CURLE_OK && target) {
    return redact_url(target);
  }
  return "an unknown URL";
}

FetchError map_curl_error(CURL* curl, CURLcode rc, const char* detail, const std::string& url,
                          const FetchLimits& limits)
{
  long redirects = 0;
  lib().easy_getinfo(curl, CURLINFO_REDIRECT_COUNT, &redirects);
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return failure(FetchFailure::timeout, url, curl_reason(rc, detail));
  case CURLE_UNSUPPORTED_PROTOCOL:
    if (redirects > 0) {
      return failure(FetchFailure::refused, url,
                     "redirected to " + where_redirected(curl) +
                         ", which is not an http or https URL");
    }
    return failure(FetchFailure::refused, url, curl_reason(rc, detail));
  case CURLE_URL_MALFORMAT:
    return failure(FetchFailure::refused, url,
                   (redirects > 0 ? "redirected to a malformed URL: " : "malformed URL: ") +
                       curl_reason(rc, detail));
  case CURLE_TOO_MANY_REDIRECTS:
    return failure(FetchFailure::refused, url,
                   "more than " + std::to_string(limits.max_redirects) + " redirects");
  case CURLE_FILESIZE_EXCEEDED:
    return failure(FetchFailure::too_large, url,
                   "the server announced more than " + std::to_string(limits.max_bytes) + " bytes");
  case CURLE_WRITE_ERROR: return failure(FetchFailure::local_io, url, curl_reason(rc, detail));
  default: return failure(FetchFailure::network, url, curl_reason(rc, detail));
  }
}

FetchError status_error(long status, const std::string& url)
{
  std::string what = "the server answered HTTP " + std::to_string(status);
  if (status == 404 || status == 410) {
    return failure(FetchFailure::not_found, url, what + " (not found)");
  }
  return failure(FetchFailure::http_error, url, what);
}

} // namespace

bool is_http_url(std::string_view text)
{
  return starts_with_nocase(text, "http://") || starts_with_nocase(text, "https://");
}

std::string redact_url(std::string_view url)
{
  std::string out(url);
  auto scheme_end = out.find("://");
  auto start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  auto end = out.find_first_of("/?#", start);
  auto authority = std::string_view(out).substr(start, end == std::string::npos ? std::string::npos
                                                                                : end - start);
  // The last '@' ends the userinfo: a password may itself contain '@'.
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    out.erase(start, at + 1);
  }
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      c = '?';
    }
  }
  return out;
}

std::expected<void, FetchError> fetch_to_file(const std::string& url, const fs::path& dest,
                                              const FetchLimits& limits)
{
  // Checked here as well as by CURLOPT_PROTOCOLS_STR: a refused URL must not
  // even create the temporary file.
  if (!is_http_url(url)) {
    return std::unexpected(failure(FetchFailure::refused, url, "not an http or https URL"));
  }
  if (url.find('\0') != std::string::npos) {
    return std::unexpected(failure(FetchFailure::refused, url, "malformed URL"));
  }
  if (auto loaded = curl_api(); !loaded) {
    return std::unexpected(failure(FetchFailure::network, url, loaded.error()));
  }
  if (global_init() != CURLE_OK) {
    return std::unexpected(failure(FetchFailure::network, url, "libcurl failed to initialise"));
  }
  // Declared before the handle, which refers to them until it is cleaned up.
  char detail[CURL_ERROR_SIZE] = {};
  Transfer transfer;
  CurlHandle handle(lib().easy_init());
  if (!handle) {
    return std::unexpected(failure(FetchFailure::network, url, "libcurl failed to initialise"));
  }
  CURL* curl = handle.get();

  std::string suffix;
  try {
    suffix = random_suffix();
  } catch (const std::exception& e) { // getrandom(2) failed
    return std::unexpected(failure(FetchFailure::local_io, url,
                                   std::string("cannot name a temporary file: ") + e.what()));
  }
  fs::path tmp_path = dest;
  tmp_path += ".tmp-" + suffix;
  TempFile tmp(tmp_path);
  if (!tmp.open()) {
    return std::unexpected(failure(FetchFailure::local_io, url,
                                   util::errno_message("cannot create " + tmp_path.string())));
  }

  transfer.curl = curl;
  transfer.fd = tmp.fd();
  transfer.max_bytes = limits.max_bytes;

  // A negative or zero limit would mean "unlimited" to libcurl.
  long connect_ms = static_cast<long>(std::max<std::int64_t>(limits.connect_timeout_ms, 1));
  long total_ms = static_cast<long>(std::max<std::int64_t>(limits.total_timeout_ms, 1));
  long redirects = std::max(limits.max_redirects, 0L);
  auto announced_cap = static_cast<curl_off_t>(std::min<std::uint64_t>(
      limits.max_bytes, static_cast<std::uint64_t>(std::numeric_limits<curl_off_t>::max())));

  // Left at libcurl's defaults on purpose: proxies from the environment, TLS
  // verification on, no cookie engine, credentials never sent to another host
  // after a redirect (CURLOPT_UNRESTRICTED_AUTH off).
  CURLcode set = CURLE_OK;
  auto opt = [&](CURLoption option, auto value) {
    if (set == CURLE_OK) {
      set = lib().easy_setopt(curl, option, value);
    }
  };
  opt(CURLOPT_URL, url.c_str());
  opt(CURLOPT_PROTOCOLS_STR, "http,https");
  opt(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  opt(CURLOPT_FOLLOWLOCATION, 1L);
  opt(CURLOPT_MAXREDIRS, redirects);
  opt(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  opt(CURLOPT_TIMEOUT_MS, total_ms);
  opt(CURLOPT_MAXFILESIZE_LARGE, announced_cap);
  opt(CURLOPT_NOSIGNAL, 1L);
  // Statuses are read after the transfer, so 404 and 410 can be told apart.
  opt(CURLOPT_FAILONERROR, 0L);
  opt(CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED));
  opt(CURLOPT_USERAGENT, k_user_agent);
  opt(CURLOPT_ERRORBUFFER, detail);
  opt(CURLOPT_WRITEFUNCTION, &on_data);
  opt(CURLOPT_WRITEDATA, static_cast<void*>(&transfer));
  if (set != CURLE_OK) {
    return std::unexpected(
        failure(FetchFailure::network, url,
                std::string("cannot configure libcurl: ") + lib().easy_strerror(set)));
  }

  CURLcode rc = lib().easy_perform(curl);
  long status = 0;
  lib().easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

  if (transfer.write_errno != 0) {
    errno = transfer.write_errno;
    return std::unexpected(failure(FetchFailure::local_io, url,
                                   util::errno_message("cannot write " + tmp_path.string())));
  }
  if (transfer.too_large) {
    return std::unexpected(
        failure(FetchFailure::too_large, url,
                "the body is larger than " + std::to_string(limits.max_bytes) + " bytes"));
  }
  // A status the transfer itself did not fail on decides; an announced size
  // over the cap does not hide a 404.
  bool status_decides =
      rc == CURLE_OK || transfer.bad_status || (rc == CURLE_FILESIZE_EXCEEDED && status >= 400);
  if (status_decides && !success_status(status)) {
    return std::unexpected(status_error(status, url));
  }
  if (rc != CURLE_OK) {
    return std::unexpected(map_curl_error(curl, rc, detail, url, limits));
  }

  if (::fsync(tmp.fd()) != 0 || ::close(tmp.handle().release()) != 0) {
    return std::unexpected(failure(FetchFailure::local_io, url,
                                   util::errno_message("cannot flush " + tmp_path.string())));
  }
  if (::rename(tmp_path.c_str(), dest.c_str()) != 0) {
    return std::unexpected(failure(FetchFailure::local_io, url,
                                   util::errno_message("cannot rename onto " + dest.string())));
  }
  tmp.committed();
  return {};
}

} // namespace sandbox::deps
