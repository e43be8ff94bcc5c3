#pragma once
// libcurl and libarchive, loaded with dlopen the first time a package is
// fetched or unpacked rather than at every start of the command: with the
// libraries they bring (TLS, Kerberos, LDAP, compression, ICU, ...) they cost
// several milliseconds of loading and constructors per process, which a
// one-shot command that never touches a package should not pay.

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>

#include <expected>
#include <string>

namespace sandbox::deps {

struct CurlApi {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_easy_cleanup) easy_cleanup;
};

struct ArchiveApi {
  decltype(&::archive_read_new) read_new;
  decltype(&::archive_read_free) read_free;
  decltype(&::archive_read_support_format_tar) read_support_format_tar;
  decltype(&::archive_read_support_filter_gzip) read_support_filter_gzip;
  decltype(&::archive_read_support_filter_none) read_support_filter_none;
  decltype(&::archive_read_open_memory) read_open_memory;
  decltype(&::archive_read_next_header) read_next_header;
  decltype(&::archive_read_data) read_data;
  decltype(&::archive_error_string) error_string;
  decltype(&::archive_filter_code) filter_code;
  decltype(&::archive_entry_filetype) entry_filetype;
  decltype(&::archive_entry_hardlink) entry_hardlink;
  decltype(&::archive_entry_pathname) entry_pathname;
  decltype(&::archive_entry_pathname_utf8) entry_pathname_utf8;
  decltype(&::archive_entry_perm) entry_perm;
  decltype(&::archive_entry_size) entry_size;
  decltype(&::archive_entry_size_is_set) entry_size_is_set;
};

// The loaded functions, or why the library could not be loaded (its name and
// dlerror). Loaded once per process; thread-safe.
std::expected<const CurlApi*, std::string> curl_api();
std::expected<const ArchiveApi*, std::string> archive_api();

} // namespace sandbox::deps
