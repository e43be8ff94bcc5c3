#include "service/protocol.h"

#include "compiler/engine_state.h"
#include "compiler/in_process_compiler.h"
#include "compiler/security_gate.h"
#include "compiler/incremental_compile.h"
#include "compiler/isolated_compiler.h"
#include "compiler/report.h"
#include "core/options.h"
#include "fleet/fleet.h"
#include "service/caller_scope.h"
#include "service/doctor.h"
#include "util/fs.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <system_error>

namespace sandbox::service {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A bad argument of a request: the engine's invalid_option, naming it.
struct BadArgument {
  core::InvalidOption error;
};

const json& argument(const json& request, const char* name)
{
  auto it = request.find(name);
  if (it == request.end()) {
    throw BadArgument{{name, "required"}};
  }
  return *it;
}

std::string string_argument(const json& request, const char* name)
{
  const auto& value = argument(request, name);
  if (!value.is_string()) {
    throw BadArgument{{name, "must be a string"}};
  }
  return value.get<std::string>();
}

std::optional<std::string> optional_string(const json& request, const char* name)
{
  auto it = request.find(name);
  if (it == request.end() || it->is_null()) {
    return std::nullopt;
  }
  if (!it->is_string()) {
    throw BadArgument{{name, "must be a string"}};
  }
  return it->get<std::string>();
}

std::vector<std::string> string_list(const json& request, const char* name, bool required)
{
  auto it = request.find(name);
  if (it == request.end() || it->is_null()) {
    if (required) {
      throw BadArgument{{name, "required"}};
    }
    return {};
  }
  if (!it->is_array()) {
    throw BadArgument{{name, "must be a list of strings"}};
  }
  std::vector<std::string> out;
  for (const auto& item : *it) {
    if (!item.is_string()) {
      throw BadArgument{{name, "must be a list of strings"}};
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

json options_object(const json& request)
{
  auto it = request.find("options");
  if (it == request.end() || it->is_null()) {
    return json::object();
  }
  if (!it->is_object()) {
    throw BadArgument{{"options", "must be an object"}};
  }
  return *it;
}

core::CompileOptions compile_options(const json& object)
{
  auto parsed = core::parse_compile_options(object);
  if (!parsed) {
    throw BadArgument{parsed.error()};
  }
  return *parsed;
}

// A private directory for BEAMs the caller wants back as binaries only;
// removed with everything in it when the request ends.
class ScratchDir {
public:
  ScratchDir()
  {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/sandbox-serve-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    m_path = templ;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir()
  {
    std::error_code ec;
    fs::remove_all(m_path, ec);
  }
  [[nodiscard]] const fs::path& path() const { return m_path; }

private:
  fs::path m_path;
};

json binaries_json(const std::vector<compiler::LoadedModule>& loaded)
{
  json modules = json::array();
  for (const auto& item : loaded) {
    modules.push_back({{"module", item.module},
                       {"beam_file", item.beam_file.string()},
                       {"binary", base64_encode(item.binary)}});
  }
  return modules;
}

json op_ping(const json&, CallerScope&)
{
  json out = {{"ok", true},
              {"version", SANDBOX_SERVICE_VERSION},
              {"protocol_version", kServiceProtocolVersion},
              {"pid", ::getpid()}};
  if (auto fleet = fleet::process_fleet()) {
    out["cluster"] = fleet->status();
  }
  return out;
}

json op_doctor(const json&, CallerScope&)
{
  auto out = doctor_json();
  if (auto fleet = fleet::process_fleet()) {
    out["cluster"] = fleet->status();
  }
  return out;
}

// A compile on a node of a fleet (`serve --cluster`): answered by the fleet
// (its shared cache or another node) when it takes it, else run here on one
// of this node's job slots, the result saying why.
json through_fleet(const std::string& op, const json& args, json options_json, const core::CompileOptions& options,
                   const std::optional<fs::path>& tree, const std::function<json()>& local)
{
  const auto* route = fleet::current_route();
  if (route == nullptr) {
    return local();
  }
  std::string why;
  if (options.incremental) {
    why = "an incremental compile keeps its state on the node that compiles it";
  } else if (options.temp_dir) {
    why = "the temp_dir option names a directory of this node";
  } else if (!options.package_mirror.empty() && !options.package_mirror.starts_with("http://") &&
             !options.package_mirror.starts_with("https://")) {
    why = "the package_mirror option names a directory of this node";
  } else if (std::any_of(options.source_files.begin(), options.source_files.end(),
                         [](const std::string& file) { return file.starts_with("/"); })) {
    why = "source_files names absolute paths of this node";
  } else if (options.toolchain.starts_with("/")) {
    why = "the toolchain option names a directory of this node";
  } else if (auto tools = backends::resolve_toolchain(options.toolchain); tools) {
    fleet::Action action;
    action.op = op;
    action.args = args;
    action.options = std::move(options_json);
    action.tree = tree;
    action.toolchain = fmt::format("elixir {} otp {}", (*tools)->elixir_version, (*tools)->otp_version);
    action.cacheable = options.cache_enabled && !options.skip_cache && !options.force_recompile;
    action.timeout_ms = options.timeout_ms;
    if (auto answer = route->fleet->run(action, route->client_gone, why)) {
      return *answer;
    }
  } else {
    return engine_error(tools.error());
  }
  auto response = route->local(local);
  if (response.is_object() && response.value("ok", false)) {
    response["fleet"] = {{"route", "local"}, {"reason", why}};
  }
  return response;
}

json op_compile(const json& request, CallerScope& scope)
{
  auto object = options_object(request);
  auto options = compile_options(object);
  scope.check_options(options);
  auto tree = scope.tree(string_argument(request, "path"));
  return through_fleet("compile", json::object(), object, options, tree,
                       [&] { return compiler::to_json(compiler::compile_sandbox(tree, options)); });
}

json op_compile_file(const json& request, CallerScope& scope)
{
  auto options = compile_options(options_object(request));
  scope.check_options(options);
  return compiler::to_json(compiler::compile_file(scope.file(string_argument(request, "file")), options));
}

json op_incremental(const json& request, CallerScope& scope)
{
  auto options = compile_options(options_object(request));
  scope.check_options(options);
  auto path = string_argument(request, "path");
  auto changed = string_list(request, "changed_files", false);
  auto tree = scope.tree(path);
  if (scope.acting()) {
    // Hints named under the caller's path name the same files in its mirror.
    for (auto& file : changed) {
      if (file.starts_with(path + "/")) {
        file = (tree / file.substr(path.size() + 1)).string();
      }
    }
  }
  return compiler::to_json(compiler::incremental_compile(tree, changed, options));
}

json op_scan(const json& request, CallerScope& scope)
{
  auto path = string_argument(request, "path");
  // scan_depth is the scan's own option; the rest are compile options.
  json options = options_object(request);
  if (auto top = request.find("scan_depth"); top != request.end() && !top->is_null()) {
    options["scan_depth"] = *top;
  }
  compiler::ScanOptions scan_options;
  if (auto depth = options.find("scan_depth"); depth != options.end()) {
    if (!depth->is_number_integer() || depth->get<std::int64_t>() < 0 || depth->get<std::int64_t>() > 100) {
      throw BadArgument{{"scan_depth", "expected an integer from 0 to 100"}};
    }
    scan_options.scan_depth = depth->get<int>();
    options.erase("scan_depth");
  }
  auto parsed = compile_options(options);
  scan_options.restricted_modules = parsed.restricted_modules;
  scan_options.allowed_operations = parsed.allowed_operations;
  scan_options.scope = parsed.scan_scope;
  auto result = compiler::scan_code_security(scope.tree(path), scan_options);
  if (!result) {
    return engine_error(result.error());
  }
  // As scan_code_security: the scan ran, so the answer is ok and the caller
  // reads its threats.
  auto out = scan::to_json(*result);
  out["ok"] = true;
  return out;
}

json op_cache_stats(const json& request, CallerScope& scope)
{
  auto stats = compiler::get_cache_statistics(scope.tree(string_argument(request, "path")));
  if (!stats) {
    return engine_error(stats.error());
  }
  auto response = *stats;
  response["ok"] = true;
  return response;
}

json op_cache_clear(const json& request, CallerScope& scope)
{
  auto cleared = compiler::clear_compilation_cache(scope.tree(string_argument(request, "path")));
  return cleared ? json{{"ok", true}} : engine_error(cleared.error());
}

// The BEAMs a request names, as the engine may read them (staged copies for a
// caller without the engine's rights).
std::vector<fs::path> beam_paths(const json& request, CallerScope& scope)
{
  std::vector<fs::path> paths;
  for (const auto& file : string_list(request, "beam_files", true)) {
    paths.push_back(scope.file(file));
  }
  return paths;
}

json op_validate(const json& request, CallerScope& scope)
{
  auto checked = compiler::validate_beam_files(beam_paths(request, scope));
  return checked ? json{{"ok", true}} : engine_error(checked.error());
}

json op_cleanup(const json& request, CallerScope& scope)
{
  auto temp_dir = string_argument(request, "temp_dir");
  if (!scope.acting()) {
    auto removed = compiler::cleanup_temp_artifacts(temp_dir);
    return removed ? json{{"ok", true}} : engine_error(removed.error());
  }
  // Only a temp dir the engine made and gave to this caller; removed with the
  // caller's rights, so nothing the caller could not delete goes with it.
  if (auto owned = check_owns(scope.caller(), temp_dir); !owned) {
    return engine_error(owned.error());
  }
  if (auto verified = compiler::verify_temp_dir_marker(temp_dir, scope.caller().uid); !verified) {
    return engine_error(core::InvalidSandboxPath{temp_dir, verified.error()});
  }
  ActingAs acting(scope.caller());
  auto removed = acting.active() ? util::remove_tree(temp_dir)
                                 : std::expected<void, std::string>(std::unexpected("cannot act as the caller"));
  return removed ? json{{"ok", true}} : engine_error(core::PermissionDenied{temp_dir, "cleanup"});
}

json op_report(const json& request, CallerScope&)
{
  auto report = compiler::compilation_report(argument(request, "result"));
  if (!report) {
    throw BadArgument{{"result", report.error()}};
  }
  return {{"ok", true}, {"report", *report}};
}

json op_compile_string(const json& request, CallerScope& scope)
{
  auto code = string_argument(request, "code");
  auto filename = string_argument(request, "filename");
  auto output = optional_string(request, "output");
  bool binaries = request.value("binaries", false);
  auto limits = compile_options(options_object(request));
  scope.check_options(limits);
  if (output) {
    output = scope.output(*output).string();
  }
  // Only a compile whose BEAMs stay with the engine goes to the fleet.
  bool fleet = !output && fleet::current_route() != nullptr;
  std::optional<ScratchDir> scratch;
  if (!fleet && !output && binaries) {
    scratch.emplace();
    output = scratch->path().string();
  }
  auto local = [&] {
    return compiler::to_json(compiler::compile_string(code, filename,
                                                      output ? std::optional<fs::path>(*output) : std::nullopt, limits));
  };
  auto result = fleet ? through_fleet("compile_string", {{"code", code}, {"filename", filename}},
                                      options_object(request), limits, std::nullopt, local)
                      : local();
  if (result.value("ok", false) && binaries) {
    std::vector<fs::path> files;
    for (const auto& file : result.value("beam_files", json::array())) {
      files.emplace_back(file.get<std::string>());
    }
    auto loaded = compiler::load_beam_files(files);
    if (!loaded) {
      return engine_error(loaded.error());
    }
    result["binaries"] = binaries_json(*loaded);
    if (scratch) {
      result.erase("beam_files"); // they are gone with the scratch directory
    } else if (fleet && result["temp_dir"].is_string()) {
      (void)compiler::cleanup_temp_artifacts(result["temp_dir"].get<std::string>());
      result.erase("beam_files");
      result["temp_dir"] = nullptr;
    }
  }
  return result;
}

json op_compile_in_process(const json& request, CallerScope& scope)
{
  auto object = options_object(request);
  compiler::InProcessOptions options;
  for (auto [key, field] : {std::pair{"debug_info", &options.debug_info}, std::pair{"parallel", &options.parallel}}) {
    if (auto it = object.find(key); it != object.end()) {
      if (!it->is_boolean()) {
        throw BadArgument{{key, "must be a boolean"}};
      }
      *field = it->get<bool>();
      object.erase(key);
    }
  }
  options.limits = compile_options(object);
  options.source_files = options.limits.source_files;
  scope.check_options(options.limits);
  auto source = scope.tree(string_argument(request, "source"));
  auto output = scope.output(string_argument(request, "output"));
  return compiler::to_json(compiler::compile_in_process(source, output, options));
}

json op_load_beam_files(const json& request, CallerScope& scope)
{
  auto loaded = compiler::load_beam_files(beam_paths(request, scope));
  if (!loaded) {
    return engine_error(loaded.error());
  }
  return {{"ok", true}, {"modules", binaries_json(*loaded)}};
}

} // namespace

const std::vector<Operation>& operations()
{
  static const std::vector<Operation> table = {
    {"ping", false, op_ping},
    {"doctor", false, op_doctor},
    {"compile", true, op_compile},
    {"compile_file", true, op_compile_file},
    {"incremental", true, op_incremental},
    {"scan", false, op_scan},
    {"cache_stats", false, op_cache_stats},
    {"cache_clear", false, op_cache_clear},
    {"validate", false, op_validate},
    {"compile_string", true, op_compile_string},
    {"compile_in_process", true, op_compile_in_process},
    {"load_beam_files", false, op_load_beam_files},
    {"cleanup", false, op_cleanup},
    {"report", false, op_report},
  };
  return table;
}

const Operation* find_operation(std::string_view name)
{
  for (const auto& op : operations()) {
    if (op.name == name) {
      return &op;
    }
  }
  return nullptr;
}

json protocol_error(std::string_view type, json fields)
{
  fields["type"] = type;
  return {{"ok", false}, {"error", std::move(fields)}};
}

json engine_error(const core::Error& error) { return {{"ok", false}, {"error", core::to_json(error)}}; }

json with_id(json response, const json& id)
{
  response["id"] = id;
  return response;
}

ParsedRequest parse_request(std::string_view line)
{
  ParsedRequest parsed;
  parsed.request = json::parse(line, nullptr, false);
  if (parsed.request.is_discarded()) {
    parsed.error = protocol_error(kind::malformed_request, {{"reason", "not JSON"}});
    return parsed;
  }
  if (!parsed.request.is_object()) {
    parsed.error = protocol_error(kind::malformed_request, {{"reason", "a request is a JSON object"}});
    return parsed;
  }
  parsed.id = parsed.request.value("id", json(nullptr));
  auto op = parsed.request.find("op");
  if (op == parsed.request.end() || !op->is_string()) {
    parsed.error = protocol_error(kind::malformed_request, {{"reason", "\"op\" must be a string"}});
    return parsed;
  }
  parsed.operation = find_operation(op->get<std::string>());
  if (!parsed.operation) {
    parsed.error = protocol_error(kind::unknown_operation, {{"op", *op}});
  }
  return parsed;
}

json dispatch(const Operation& operation, const json& request, const Caller& caller)
{
  try {
    CallerScope scope(caller);
    return scope.finish(operation.run(request, scope));
  } catch (const BadArgument& bad) {
    return engine_error(bad.error);
  } catch (const Refused& refused) {
    return engine_error(refused.error);
  } catch (const std::exception& e) {
    return protocol_error(kind::internal_error, {{"reason", e.what()}});
  }
}

json answer_line(std::string_view line, std::size_t max_request_bytes)
{
  const Caller caller = Caller::of_process();
  if (line.size() > max_request_bytes) {
    return protocol_error(kind::request_too_large, {{"limit", max_request_bytes}});
  }
  auto parsed = parse_request(line);
  if (parsed.error) {
    return with_id(*parsed.error, parsed.id);
  }
  return with_id(dispatch(*parsed.operation, parsed.request, caller), parsed.id);
}

std::string base64_encode(std::string_view bytes)
{
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

} // namespace sandbox::service
