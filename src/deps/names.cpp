#include "deps/mix_lock.h"

#include <algorithm>

namespace sandbox::deps {

bool valid_app_name(std::string_view name)
{
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (name.empty() || name.size() > 255 || !lower(name.front())) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return lower(c) || digit(c) || c == '_'; });
}

} // namespace sandbox::deps
