#pragma once
// The bytecode audit: every import of a BEAM file (ImpT, what the module can
// call) and every external fun in its literal table is checked against the
// same rule table as the sources, and a module of the table used as a value
// that reaches a dynamic call is judged as the source scan's value flow is.
// It sees what macros generate and what a prebuilt .beam hides, which no
// source scan can.

#include "beam/beam.h"
#include "scan/findings.h"

#include <filesystem>
#include <string_view>

namespace sandbox::scan {

// Where a BEAM came from decides how it is judged. One shipped in the sandbox
// is judged as host code whatever its module: nothing says how it gets
// loaded. One a compile produced is judged by its module: a Mix task
// (Elixir.Mix.Tasks.*) without an on_load function is code only Mix runs
// (RunsIn::mix); any other module is host code, and with scope compiled it
// must not name a Mix task (mix_task_reference), since the task's code was
// not judged as host code.
enum class BeamOrigin { shipped, compiled };

// `file` names the BEAM in findings (relative to the sandbox or the output);
// `bytes` is the file `info` was parsed from. Each import, and each external
// fun written as a literal (fun M:F/A), is looked up in the rule table; a
// module of the table used as a value together with a dynamic call of one of
// its functions is a value_flow finding (docs/security.md). With
// `task_references`, a module that names a Mix task is a mix_task_reference.
void audit_beam(const beam::BeamInfo& info, std::string_view bytes, std::string_view file, Report& report,
                RunsIn runs_in = RunsIn::host, bool task_references = false);

// Reads and audits one file; an unreadable or malformed BEAM is itself a
// finding (a threat: it cannot be vetted).
void audit_beam_file(const std::filesystem::path& path, std::string_view file, Report& report,
                     BeamOrigin origin = BeamOrigin::shipped);

// An application resource file (.app) a compile produced: with scope
// compiled, a Mix task as the application's callback module (`mod`) is a
// mix_task_reference, since starting the application runs it in the host.
void audit_app_file(const std::filesystem::path& path, std::string_view file, Report& report);

} // namespace sandbox::scan
