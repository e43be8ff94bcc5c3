#include "deps/lazy_libs.h"

#include <dlfcn.h>

#include <mutex>

namespace sandbox::deps {

namespace {

// Opens `soname` and fills each slot of `api` by name; the first missing
// piece is the error.
template <typename Api, std::size_t N>
std::expected<const Api*, std::string> load(const char* soname, Api& api,
                                            const std::pair<void**, const char*> (&slots)[N])
{
  void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return std::unexpected(std::string("cannot load ") + soname + ": " + (why != nullptr ? why : "unknown"));
  }
  for (const auto& [slot, name] : slots) {
    *slot = ::dlsym(handle, name);
    if (*slot == nullptr) {
      return std::unexpected(std::string(soname) + " has no " + name);
    }
  }
  return &api; // the library stays loaded for the life of the process
}

template <typename T> void** slot(T& field) { return reinterpret_cast<void**>(&field); }

} // namespace

std::expected<const CurlApi*, std::string> curl_api()
{
  static std::once_flag once;
  static CurlApi api{};
  static std::expected<const CurlApi*, std::string> loaded = std::unexpected(std::string("not loaded"));
  std::call_once(once, [] {
    const std::pair<void**, const char*> slots[] = {
      {slot(api.global_init), "curl_global_init"},   {slot(api.easy_init), "curl_easy_init"},
      {slot(api.easy_setopt), "curl_easy_setopt"},   {slot(api.easy_perform), "curl_easy_perform"},
      {slot(api.easy_getinfo), "curl_easy_getinfo"}, {slot(api.easy_strerror), "curl_easy_strerror"},
      {slot(api.easy_cleanup), "curl_easy_cleanup"},
    };
    loaded = load("libcurl.so.4", api, slots);
  });
  return loaded;
}

std::expected<const ArchiveApi*, std::string> archive_api()
{
  static std::once_flag once;
  static ArchiveApi api{};
  static std::expected<const ArchiveApi*, std::string> loaded = std::unexpected(std::string("not loaded"));
  std::call_once(once, [] {
    const std::pair<void**, const char*> slots[] = {
      {slot(api.read_new), "archive_read_new"},
      {slot(api.read_free), "archive_read_free"},
      {slot(api.read_support_format_tar), "archive_read_support_format_tar"},
      {slot(api.read_support_filter_gzip), "archive_read_support_filter_gzip"},
      {slot(api.read_support_filter_none), "archive_read_support_filter_none"},
      {slot(api.read_open_memory), "archive_read_open_memory"},
      {slot(api.read_next_header), "archive_read_next_header"},
      {slot(api.read_data), "archive_read_data"},
      {slot(api.error_string), "archive_error_string"},
      {slot(api.filter_code), "archive_filter_code"},
      {slot(api.entry_filetype), "archive_entry_filetype"},
      {slot(api.entry_hardlink), "archive_entry_hardlink"},
      {slot(api.entry_pathname), "archive_entry_pathname"},
      {slot(api.entry_pathname_utf8), "archive_entry_pathname_utf8"},
      {slot(api.entry_perm), "archive_entry_perm"},
      {slot(api.entry_size), "archive_entry_size"},
      {slot(api.entry_size_is_set), "archive_entry_size_is_set"},
    };
    loaded = load("libarchive.so.13", api, slots);
  });
  return loaded;
}

} // namespace sandbox::deps
