#pragma once
// The listening socket systemd passes to an activated `sandbox serve`.

#include "util/fd.h"

#include <expected>
#include <optional>
#include <string>

namespace sandbox::service {

// systemd's socket activation protocol (sd_listen_fds(3)), implemented here
// rather than by linking libsystemd: when LISTEN_PID is this process and
// LISTEN_FDS is at least 1, fd 3 is the listening socket. The variables are
// removed either way, so nothing this process starts believes it was passed
// sockets. nullopt when the process was not activated.
std::expected<std::optional<util::Fd>, std::string> activated_socket();

} // namespace sandbox::service
