// The integration tests' checks and fixture (declared in support.h): tree
// snapshots, the DESIGN.md success contract, typed errors, and SandboxTest.

#include "support.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace sandbox::test {

std::map<std::string, TreeItem> snapshot_tree(const fs::path& root)
{
  std::map<std::string, TreeItem> items;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) {
      continue;
    }
    TreeItem item;
    item.type = S_ISREG(st.st_mode)   ? 'f'
                : S_ISDIR(st.st_mode) ? 'd'
                : S_ISLNK(st.st_mode) ? 'l'
                                      : 'o';
    item.size = S_ISDIR(st.st_mode) ? 0 : static_cast<std::uint64_t>(st.st_size);
    item.mtime_ns =
        S_ISDIR(st.st_mode)
            ? 0
            : static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    item.mode = st.st_mode & 07777;
    if (S_ISLNK(st.st_mode)) {
      item.link_target = fs::read_symlink(it->path(), ec).string();
      ec.clear();
    }
    items[it->path().lexically_relative(root).string()] = item;
  }
  return items;
}

std::string diff_trees(const std::map<std::string, TreeItem>& before,
                       const std::map<std::string, TreeItem>& after)
{
  std::string out;
  for (const auto& [path, item] : before) {
    auto it = after.find(path);
    if (it == after.end()) {
      out += "removed: " + path + "\n";
    } else if (!(it->second == item)) {
      out += "changed: " + path + "\n";
    }
  }
  for (const auto& [path, item] : after) {
    if (!before.contains(path)) {
      out += "added: " + path + "\n";
    }
  }
  return out;
}

std::vector<fs::path> entries_with_prefix(const fs::path& dir, const std::string& prefix)
{
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) {
      out.push_back(entry.path());
    }
  }
  return out;
}

std::string read_text(const fs::path& path)
{
  std::ifstream in(path, std::ios::binary);
  return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

SandboxTest::SandboxTest()
{
  fs::create_directories(state_dir());
  fs::create_directories(job_root());
}

fs::path SandboxTest::copy_example(const std::string& name) const
{
  return m_scratch.copy_in(example_dir(name), "src/" + name);
}

fs::path SandboxTest::copy_corpus(const std::string& name) const
{
  return m_scratch.copy_in(corpus_dir(name), "src/" + name);
}

fs::path SandboxTest::make_sandbox(const std::string& name,
                                   const std::map<std::string, std::string>& files) const
{
  auto root = scratch() / "src" / name;
  fs::create_directories(root);
  for (const auto& [relative, text] : files) {
    m_scratch.write(fs::path("src") / name / relative, text);
  }
  return root;
}

RunResult SandboxTest::sandbox(const std::vector<std::string>& args, RunOptions options) const
{
  std::vector<std::string> argv = {sandbox_binary().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  options.env.try_emplace("SANDBOX_STATE_DIR", state_dir().string());
  options.env.try_emplace("TMPDIR", job_root().string());
  auto run = run_process(argv, options);
  m_ran.push_back(run.pid);
  return run;
}

RunResult SandboxTest::compile(const fs::path& path, const std::vector<std::string>& args,
                               RunOptions options) const
{
  std::vector<std::string> argv = {"compile", path.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.emplace_back("--json");
  return sandbox(argv, std::move(options));
}

void expect_success_contract(const nlohmann::json& result)
{
  ASSERT_TRUE(result.is_object()) << result;
  EXPECT_EQ(result.value("ok", false), true) << result.dump(2);
  auto expect_type = [&](const char* key, auto predicate, const char* what) {
    ASSERT_TRUE(result.contains(key)) << "missing key " << key;
    EXPECT_TRUE(predicate(result[key]))
        << key << " should be " << what << ", is " << result[key].dump();
  };
  expect_type(
      "beam_files", [](const auto& v) { return v.is_array(); }, "an array");
  expect_type(
      "app_file", [](const auto& v) { return v.is_null() || v.is_string(); }, "null or a string");
  expect_type(
      "compilation_time", [](const auto& v) { return v.is_number_integer(); }, "an integer");
  expect_type(
      "temp_dir", [](const auto& v) { return v.is_string(); }, "a string");
  expect_type(
      "output", [](const auto& v) { return v.is_string(); }, "a string");
  expect_type(
      "warnings", [](const auto& v) { return v.is_array(); }, "an array");
  expect_type(
      "incremental", [](const auto& v) { return v.is_boolean(); }, "a boolean");
  expect_type(
      "cache_hit", [](const auto& v) { return v.is_boolean(); }, "a boolean");
  expect_type(
      "changed_files", [](const auto& v) { return v.is_array(); }, "an array");
  expect_type(
      "compilation_strategy", [](const auto& v) { return v.is_string(); }, "a string");
  expect_type(
      "resource_usage", [](const auto& v) { return v.is_object(); }, "an object");
  expect_type(
      "isolation", [](const auto& v) { return v.is_object(); }, "an object");
  expect_type(
      "modules", [](const auto& v) { return v.is_array(); }, "an array");
  for (const auto& beam : result["beam_files"]) {
    EXPECT_TRUE(beam.is_string()) << beam;
  }
  for (const auto& module : result["modules"]) {
    EXPECT_TRUE(module.is_string()) << module;
  }
  EXPECT_EQ(result["modules"].size(), result["beam_files"].size());
  EXPECT_GE(result["compilation_time"].get<std::int64_t>(), 0);
  const auto& usage = result["resource_usage"];
  for (const char* key : {"peak_memory_bytes", "cpu_time_ms", "wall_time_ms"}) {
    ASSERT_TRUE(usage.contains(key)) << "resource_usage lacks " << key;
    EXPECT_TRUE(usage[key].is_number_integer()) << key << ": " << usage[key];
    EXPECT_GE(usage[key].get<std::int64_t>(), 0) << key;
  }
  EXPECT_TRUE(result["isolation"].contains("mode")) << result["isolation"];
  for (const auto& warning : result["warnings"]) {
    ASSERT_TRUE(warning.is_object()) << warning;
    EXPECT_TRUE(warning["file"].is_string()) << warning;
    EXPECT_TRUE(warning["line"].is_null() || warning["line"].is_number_integer()) << warning;
    EXPECT_TRUE(warning["message"].is_string()) << warning;
  }
  std::string strategy = result["compilation_strategy"];
  EXPECT_TRUE(strategy == "full" || strategy == "incremental" || strategy == "cache_hit")
      << strategy;
  // Every BEAM is a real file below temp_dir.
  fs::path temp = result["temp_dir"].get<std::string>();
  EXPECT_TRUE(temp.is_absolute()) << temp;
  for (const auto& beam : result["beam_files"]) {
    fs::path file = beam.get<std::string>();
    EXPECT_TRUE(file.is_absolute()) << file;
    EXPECT_EQ(file.extension(), ".beam") << file;
    auto relative = file.lexically_relative(temp);
    EXPECT_FALSE(relative.empty() || *relative.begin() == "..") << file << " is not under " << temp;
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(file))) << file;
  }
}

::testing::AssertionResult is_error(const RunResult& run, const std::string& type, int exit_status)
{
  if (run.timed_out) {
    return ::testing::AssertionFailure() << "timed out\n" << run.describe();
  }
  if (run.exit_code != exit_status) {
    return ::testing::AssertionFailure()
           << "exit status " << run.exit_code << ", expected " << exit_status << "\n"
           << run.describe();
  }
  auto json = run.json();
  if (!json.is_object() || json.value("ok", true) || !json.contains("error") ||
      !json["error"].is_object()) {
    return ::testing::AssertionFailure() << "not a failure object\n" << run.describe();
  }
  if (json["error"].value("type", "") != type) {
    return ::testing::AssertionFailure()
           << "error type " << json["error"].value("type", "") << ", expected " << type << "\n"
           << run.describe();
  }
  return ::testing::AssertionSuccess();
}

std::vector<fs::path> beam_paths(const nlohmann::json& result)
{
  std::vector<fs::path> out;
  for (const auto& beam : result.value("beam_files", nlohmann::json::array())) {
    out.emplace_back(beam.get<std::string>());
  }
  return out;
}

std::vector<std::string> beam_names(const nlohmann::json& result)
{
  std::vector<std::string> out;
  for (const auto& path : beam_paths(result)) {
    out.push_back(path.filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// --- the checks' own tests --------------------------------------------------

TEST(Support, SnapshotSeesAddedChangedAndRemovedFiles)
{
  TempTree tree("support-test-");
  tree.write("a.txt", "a");
  tree.write("d/b.txt", "b");
  auto before = snapshot_tree(tree.path());
  EXPECT_EQ(diff_trees(before, snapshot_tree(tree.path())), "");
  tree.write("a.txt", "changed");
  fs::remove(tree.path() / "d" / "b.txt");
  fs::create_symlink("/etc/passwd", tree.path() / "link");
  auto diff = diff_trees(before, snapshot_tree(tree.path()));
  EXPECT_NE(diff.find("changed: a.txt"), std::string::npos) << diff;
  EXPECT_NE(diff.find("removed: d/b.txt"), std::string::npos) << diff;
  EXPECT_NE(diff.find("added: link"), std::string::npos) << diff;
}

fs::path result_ebin(const nlohmann::json& result)
{
  return fs::path(result.at("temp_dir").get<std::string>()) / "ebin";
}

std::map<std::string, std::string> beam_md5s(const fs::path& dir)
{
  auto run = run_erl(dir, "{ok, Fs} = file:list_dir(\"" + dir.string() +
                              "\"), [begin {ok, {M, D}} = beam_lib:md5(filename:join(\"" + dir.string() +
                              "\", F)), io:format(\"~s ~s~n\", [M, binary:encode_hex(D)]) end"
                              " || F <- Fs, filename:extension(F) == \".beam\"], halt().");
  std::map<std::string, std::string> out;
  std::istringstream lines(run.out);
  std::string module;
  std::string digest;
  while (lines >> module >> digest) {
    out[module] = digest;
  }
  return out;
}

TEST(Support, BeamMd5sReadsEveryBeamOfADirectory)
{
  TempTree tree("support-test-");
  auto source = tree.write("m.erl", "-module(m).\n-export([f/0]).\nf() -> 1.\n");
  fs::create_directories(tree.path() / "ebin");
  auto built = run_process({"erlc", "-o", (tree.path() / "ebin").string(), source.string()});
  ASSERT_EQ(built.exit_code, 0) << built.describe();
  auto digests = beam_md5s(tree.path() / "ebin");
  ASSERT_EQ(digests.size(), 1u);
  EXPECT_EQ(digests.begin()->first, "m");
  EXPECT_EQ(digests.begin()->second.size(), 32u);
  EXPECT_EQ(result_ebin(nlohmann::json{{"temp_dir", "/t"}}), fs::path("/t/ebin"));
}

} // namespace sandbox::test
