// The Debian package (`make package`, CPack's DEB generator): built from this
// build tree, its file list and control data read back with dpkg-deb, every
// library the binary links covered by Depends, and the unpacked engine run.
// Installing it with apt-get into a fresh Debian system needs a container or
// chroot this test cannot make, so that part is not done here.

#include "support.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

namespace sandbox::test {

namespace {

bool have(const std::string& program)
{
  return run_process({"sh", "-c", "command -v \"$1\" >/dev/null", "sh", program}, with_timeout(10'000)).exit_code == 0;
}

class Package : public SandboxTest {
protected:
  void SetUp() override
  {
    if (!have("dpkg-deb") || !have("cpack")) {
      GTEST_SKIP() << "dpkg-deb or cpack is not available: the package is not built here";
    }
    // Its own package directory: tests running at once do not share cpack's staging.
    auto out = scratch() / "package";
    auto run = run_process({"cpack", "--config", (sandbox_binary().parent_path() / "CPackConfig.cmake").string(), "-B",
                            out.string()},
                           with_timeout(120'000));
    ASSERT_EQ(run.exit_code, 0) << run.describe();
    for (const auto& entry : fs::directory_iterator(out)) {
      if (entry.path().extension() == ".deb") {
        m_deb = entry.path();
      }
    }
    ASSERT_FALSE(m_deb.empty()) << run.describe();
    std::cerr << "note: the package is checked with dpkg-deb and unpacked; installing it with apt-get "
                 "into a fresh system needs a container or chroot, not available to this test\n";
  }

  std::string field(const std::string& name) const
  {
    auto run = run_process({"dpkg-deb", "-f", m_deb.string(), name});
    EXPECT_EQ(run.exit_code, 0) << run.describe();
    auto text = run.out;
    while (!text.empty() && text.back() == '\n') {
      text.pop_back();
    }
    return text;
  }

  fs::path m_deb;
};

TEST_F(Package, NameVersionAndFiles)
{
  EXPECT_TRUE(m_deb.filename().string().starts_with("sandbox_")) << m_deb;
  EXPECT_EQ(field("Package"), "sandbox");
  EXPECT_FALSE(field("Version").empty());
  EXPECT_FALSE(field("Architecture").empty());

  auto run = run_process({"dpkg-deb", "-c", m_deb.string()});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  for (const char* file : {"./usr/bin/sandbox", "./usr/lib/sandbox/ebin/sandbox_worker.beam",
                           "./usr/lib/systemd/system/sandbox.socket", "./usr/lib/systemd/system/sandbox.service",
                           "./usr/lib/systemd/user/sandbox.socket", "./usr/lib/systemd/user/sandbox.service",
                           "./usr/share/doc/sandbox/deploy.md"}) {
    EXPECT_NE(run.out.find(std::string(" ") + file + "\n"), std::string::npos) << file << "\n" << run.out;
  }
  // Nothing of the build or source tree leaks into the package.
  EXPECT_EQ(run.out.find(sandbox_binary().parent_path().string()), std::string::npos) << run.out;
}

TEST_F(Package, DependsCoversTheLinkedLibrariesAndTheToolchain)
{
  auto depends = field("Depends");
  std::set<std::string> packages;
  std::stringstream items(depends);
  for (std::string item; std::getline(items, item, ',');) {
    std::stringstream alternatives(item);
    for (std::string alternative; std::getline(alternatives, alternative, '|');) {
      std::smatch name;
      if (std::regex_search(alternative, name, std::regex("[a-z0-9][a-z0-9.+-]+"))) {
        packages.insert(name.str());
      }
    }
  }
  EXPECT_TRUE(packages.contains("elixir")) << depends;
  EXPECT_TRUE(packages.contains("erlang-base")) << depends;
  // Loaded with dlopen when a package is first fetched or unpacked, so not
  // among the NEEDED entries below.
  EXPECT_TRUE(packages.contains("libcurl4")) << depends;
  EXPECT_TRUE(packages.contains("libarchive13")) << depends;
  if (!have("readelf") || !have("dpkg")) {
    GTEST_SKIP() << "readelf or dpkg missing: linked libraries not checked against Depends";
  }
  auto needed = run_process({"readelf", "-d", sandbox_binary().string()});
  ASSERT_EQ(needed.exit_code, 0) << needed.describe();
  std::regex library(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
  int checked = 0;
  for (auto it = std::sregex_iterator(needed.out.begin(), needed.out.end(), library); it != std::sregex_iterator();
       ++it) {
    auto soname = (*it)[1].str();
    // Which installed package ships it (dpkg -S prints "package:arch: path").
    auto owner = run_process({"dpkg", "-S", "*/" + soname});
    if (owner.exit_code != 0) {
      ADD_FAILURE() << "no installed package ships " << soname << "\n" << owner.describe();
      continue;
    }
    std::set<std::string> owners;
    std::stringstream lines(owner.out);
    for (std::string line; std::getline(lines, line);) {
      auto name = line.substr(0, line.find_first_of(":,"));
      owners.insert(name);
    }
    EXPECT_TRUE(std::any_of(owners.begin(), owners.end(), [&](const std::string& p) { return packages.contains(p); }))
        << soname << " (from " << owner.out << ") is not covered by Depends: " << depends;
    ++checked;
  }
  EXPECT_GE(checked, 1); // libc at least, however the libraries are linked
}

TEST_F(Package, UnpackedEngineFindsItsWorkerAndCompiles)
{
  auto root = scratch() / "root";
  auto run = run_process({"dpkg-deb", "-x", m_deb.string(), root.string()});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto binary = root / "usr/bin/sandbox";
  RunOptions options;
  options.env = {{"SANDBOX_WORKER_EBIN", std::nullopt},
                 {"SANDBOX_STATE_DIR", state_dir().string()},
                 {"TMPDIR", job_root().string()}};
  fs::create_directories(job_root());
  auto doctor = run_process({binary.string(), "doctor", "--json"}, options);
  auto report = doctor.json();
  ASSERT_TRUE(report.is_object()) << doctor.describe();
  EXPECT_EQ(report["worker"].value("found_by", ""), "install") << report.dump(2);
  EXPECT_EQ(report["worker"].value("ebin", ""), (root / "usr/lib/sandbox/ebin").string());

  auto path = copy_example("plain_lib");
  auto compiled = run_process({binary.string(), "compile", path.string(), "--compiler", "in_process", "--json"}, options);
  ASSERT_EQ(compiled.exit_code, 0) << compiled.describe();
  expect_success_contract(compiled.json());

  // The units name the binary where the package puts it.
  EXPECT_NE(read_text(root / "usr/lib/systemd/system/sandbox.service").find("ExecStart=/usr/bin/sandbox serve"),
            std::string::npos);
  EXPECT_NE(read_text(root / "usr/lib/systemd/user/sandbox.service").find("ExecStart=/usr/bin/sandbox serve"),
            std::string::npos);
}

} // namespace

} // namespace sandbox::test
