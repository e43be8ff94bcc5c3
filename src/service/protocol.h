#pragma once
// The request/response protocol of `sandbox serve` (docs/protocol.md): one
// JSON object per line each way. A request names an operation ("op") and its
// arguments; the response carries the request's "id", "ok" and either the
// operation's result fields or {"error": {"type": KIND, ...}}. The same
// dispatcher answers `sandbox request` (one request on stdin), so a client
// sees the same answers with or without a running service.

#include "core/error.h"
#include "service/caller.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::service {

constexpr std::size_t kDefaultMaxRequestBytes = 16u << 20;

// The version of this protocol (`ping` reports it): raised when a change
// would break an existing client. The Elixir client's major version is the
// protocol version it speaks, and it refuses an engine that speaks another.
inline constexpr int kServiceProtocolVersion = 1;

// Error kinds of the protocol itself, beside the engine's (core/error.h).
namespace kind {
inline constexpr std::string_view malformed_request = "malformed_request";
inline constexpr std::string_view request_too_large = "request_too_large";
inline constexpr std::string_view unknown_operation = "unknown_operation";
inline constexpr std::string_view unsupported_operation = "unsupported_operation";
inline constexpr std::string_view busy = "busy";
inline constexpr std::string_view cancelled = "cancelled";
inline constexpr std::string_view internal_error = "internal_error";
inline constexpr std::string_view caller_not_allowed = "caller_not_allowed";
} // namespace kind

class CallerScope;

struct Operation {
  std::string_view name;
  // A job runs compilers (queued, counted against the concurrency limit,
  // cancellable); other operations are answered at once.
  bool is_job = false;
  nlohmann::json (*run)(const nlohmann::json& request, CallerScope& scope) = nullptr;
};

// Every operation the protocol knows, in documentation order.
const std::vector<Operation>& operations();
const Operation* find_operation(std::string_view name);

// {"ok": false, "error": {"type": type, ...fields}}
nlohmann::json protocol_error(std::string_view type, nlohmann::json fields = nlohmann::json::object());
nlohmann::json engine_error(const core::Error& error);

// Parses one request line: the request object and its operation, or the
// error response for a line that is not a JSON object whose "op" names an
// operation.
struct ParsedRequest {
  nlohmann::json request;               // valid when error is empty
  const Operation* operation = nullptr; // valid when error is empty
  std::optional<nlohmann::json> error;  // the response to send instead
  nlohmann::json id;                    // the request's id, or null
};
ParsedRequest parse_request(std::string_view line);

// Runs a parsed request for `caller` to its response (never throws): with the
// caller's rights wherever it names a path (service/caller_scope.h).
nlohmann::json dispatch(const Operation& operation, const nlohmann::json& request, const Caller& caller);
// Parses and answers one line in the calling thread (`sandbox request`).
nlohmann::json answer_line(std::string_view line, std::size_t max_request_bytes = kDefaultMaxRequestBytes);

// Puts the request id into a response.
nlohmann::json with_id(nlohmann::json response, const nlohmann::json& id);

// Standard base64 (RFC 4648, padded).
std::string base64_encode(std::string_view bytes);

} // namespace sandbox::service
