#pragma once
// The bytecode audit: every import of a BEAM file (ImpT, what the module can
// call) is checked against the same rule table as the sources. It sees what
// macros generate and what a prebuilt .beam hides, which no source scan can.

#include "beam/beam.h"
#include "scan/findings.h"

#include <string_view>

namespace sandbox::scan {

// `file` names the BEAM in findings (relative to the sandbox or the output).
void audit_beam(const beam::BeamInfo& info, std::string_view file, Report& report);

// Reads and audits one file; an unreadable or malformed BEAM is itself a
// finding (a threat: it cannot be vetted).
void audit_beam_file(const std::filesystem::path& path, std::string_view file, Report& report);

} // namespace sandbox::scan
