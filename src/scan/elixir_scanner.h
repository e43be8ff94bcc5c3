#pragma once
// The Elixir source scanner: reads a file through the tree-sitter syntax tree
// and resolves which module each call reaches (aliases, imports, apply,
// captures, pipes, variables and attributes holding modules, modules built
// from constants), then asks the rule table; a module used as a value that
// a call on an unknown module can reach is judged by scan/value_flow.h.

#include "scan/findings.h"

#include <expected>
#include <string>
#include <string_view>

namespace sandbox::scan {

// How much of the file is parsed: everything, or all but the blocks that
// cannot produce a finding (scan/elixir_prefilter.h). Both give the same
// findings; the second is what scans use, the first is for tests.
enum class ElixirParse { skip_inert_blocks, whole };

// Scans one Elixir source; `file` is its path relative to the sandbox.
// Returns an error only when the source cannot be parsed at all (deadline).
std::expected<void, std::string> scan_elixir_source(std::string_view file, std::string source,
                                                    Report& report,
                                                    ElixirParse parse = ElixirParse::skip_inert_blocks);

} // namespace sandbox::scan
