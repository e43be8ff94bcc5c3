#pragma once
// A message from a compiler, parsed into the fields a caller can act on.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace sandbox::core {

enum class Severity { error, warning, info };

std::string_view to_string(Severity severity);

struct Diagnostic {
  std::string file; // relative to the sandbox where it points inside it
  int line = 0;     // 0 when the compiler gave none
  int column = 0;   // 0 when the compiler gave none
  Severity severity = Severity::warning;
  std::string message;

  friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

nlohmann::json to_json(const Diagnostic& diagnostic);

} // namespace sandbox::core
