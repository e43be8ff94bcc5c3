// Mix projects with Hex dependencies (docs/dependencies.md): packages built
// here from the corpora as Hex tarballs (format 3), a mirror on disk or on
// loopback, mix.lock as the truth, packages compiled once in the jail and
// shared, umbrellas and path dependencies. Each compiled project runs in a
// fresh VM with its dependencies loaded.

#include "support.h"
#include "support/http_server.h"
#include "support/package_fixtures.h"

#include <fstream>
#include <future>
#include <regex>
#include <set>

namespace sandbox::test {

namespace {

using sandbox::testing::HexPackageSpec;
using sandbox::testing::money_fmt_package;

class Dependencies : public SandboxTest {
protected:
  void SetUp() override
  {
    if (!corpora_root()) {
      GTEST_SKIP() << "the corpora are absent: put shared/ beside the checkout or set "
                      "SANDBOX_CORPORA";
    }
    auto mirror = sandbox::testing::standard_mirror(*corpora_root(), scratch());
    ASSERT_TRUE(mirror) << mirror.error();
    m_mirror = std::move(*mirror);
  }

  fs::path shop(const std::string& name, const std::string& app, const std::string& module)
  {
    return make_sandbox(name, sandbox::testing::shop_project(m_mirror, app, module));
  }

  void add_package(const HexPackageSpec& spec)
  {
    auto added = sandbox::testing::add_package(m_mirror, spec);
    ASSERT_TRUE(added) << added.error();
  }

  [[nodiscard]] std::string lock_of(const std::vector<std::string>& apps) const
  {
    return m_mirror.lock(apps);
  }

  RunResult compile_with_mirror(const fs::path& sandbox_path, std::vector<std::string> args = {})
  {
    args.insert(args.begin(), {"--package-mirror", m_mirror.dir.string()});
    return compile(sandbox_path, args);
  }

  // Runs `code` in a fresh VM with the project's and every dependency's ebin.
  static RunResult run_with_dependencies(const nlohmann::json& result, const std::string& code)
  {
    std::vector<std::string> argv = {"elixir", "-pa", result_ebin(result).string()};
    for (const auto& dep : result["dependencies"]) {
      argv.push_back("-pa");
      argv.push_back(dep["ebin"].get<std::string>());
    }
    argv.push_back("-e");
    argv.push_back(code);
    return run_process(argv, with_timeout(60'000));
  }

  static std::map<std::string, nlohmann::json> by_name(const nlohmann::json& result)
  {
    std::map<std::string, nlohmann::json> out;
    for (const auto& dep : result["dependencies"]) {
      out[dep["name"].get<std::string>()] = dep;
    }
    return out;
  }

  sandbox::testing::PackageMirror m_mirror;
};

TEST_F(Dependencies, ThreeDependenciesOneOptionalCompileOnceAndServeASecondProject)
{
  auto first = compile_with_mirror(shop("shop", "shop", "Shop"));
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  auto result = first.json();
  expect_success_contract(result);
  auto deps = by_name(result);
  ASSERT_EQ(deps.size(), 3u) << result["dependencies"];
  for (const auto& [name, dep] : deps) {
    EXPECT_EQ(dep["source"], "hex") << name;
    EXPECT_FALSE(dep["cached"].get<bool>()) << name;
    EXPECT_EQ(fs::path(dep["ebin"].get<std::string>()),
              fs::path(result["temp_dir"].get<std::string>()) / "lib" / name / "ebin");
    EXPECT_TRUE(fs::exists(fs::path(dep["ebin"].get<std::string>()) / (name + ".app"))) << name;
  }
  EXPECT_EQ(deps["decimal"]["version"], "3.1.1");
  // The project's own BEAMs only; the packages' are in their ebins.
  EXPECT_EQ(beam_names(result), std::vector<std::string>{"Elixir.Shop.beam"});
  // Decimal was there when money_fmt compiled: its optional clause exists.
  auto ran = run_with_dependencies(result, "IO.puts(Shop.price(price: \"1.234\"))");
  EXPECT_EQ(ran.exit_code, 0) << ran.describe();
  EXPECT_EQ(ran.out, "1.23\n");

  // A second project with the same lock: no package compiles again.
  auto second = compile_with_mirror(shop("till", "till", "Till"));
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  auto again = second.json();
  for (const auto& [name, dep] : by_name(again)) {
    EXPECT_TRUE(dep["cached"].get<bool>()) << name;
  }
  // The human report names each dependency and where its BEAMs are.
  auto human = sandbox({"compile", shop("human", "human", "Human").string(), "--package-mirror",
                        m_mirror.dir.string()});
  EXPECT_EQ(human.exit_code, 0) << human.describe();
  EXPECT_NE(human.out.find("dependency decimal 3.1.1 (hex, from the package store): "),
            std::string::npos) << human.out;
  auto till = run_with_dependencies(again, "IO.puts(Till.price(price: \"2.005\"))");
  EXPECT_EQ(till.out, "2.01\n") << till.describe();
  auto store = sandbox({"cache", "packages", "--json"});
  ASSERT_EQ(store.exit_code, 0) << store.describe();
  EXPECT_EQ(store.json()["builds"], 3) << store.out;
  EXPECT_EQ(store.json()["packages"], 3) << store.out;
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-package-").empty());
  // Entries used a moment ago survive an age limit; --prune alone removes all.
  auto kept = sandbox({"cache", "packages", "--prune", "--max-age", "3600", "--json"});
  EXPECT_EQ(kept.json()["removed"], 0) << kept.out;
  auto pruned = sandbox({"cache", "packages", "--prune", "--json"});
  EXPECT_EQ(pruned.json()["removed"], 6) << pruned.out;
  EXPECT_EQ(pruned.json()["builds"], 0) << pruned.out;
  // A pruned store is rebuilt on the next compile.
  auto rebuilt = compile_with_mirror(shop("again", "again", "Again"));
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.describe();
  EXPECT_FALSE(by_name(rebuilt.json())["decimal"]["cached"].get<bool>());
}

TEST_F(Dependencies, WithoutALockTheyAreUnavailableAndTheLockIsNamed)
{
  auto path = shop("shop", "shop", "Shop");
  fs::remove(path / "mix.lock");
  auto run = compile_with_mirror(path);
  ASSERT_TRUE(is_error(run, "dependencies_unavailable", 1)) << run.describe();
  auto error = run.json()["error"];
  EXPECT_NE(error["reason"].get<std::string>().find("mix.lock"), std::string::npos) << error;
  std::set<std::string> names(error["dependencies"].begin(), error["dependencies"].end());
  EXPECT_EQ(names, (std::set<std::string>{"decimal", "money_fmt", "nimble_options"}));
  EXPECT_TRUE(entries_with_prefix(job_root(), "sandbox-job-").empty());
}

TEST_F(Dependencies, ADependencyTheLockDoesNotPinOrTheMirrorLacksIsNamed)
{
  auto path = shop("shop", "shop", "Shop");
  std::ofstream(path / "mix.lock") << lock_of({"decimal", "money_fmt"});
  auto run = compile_with_mirror(path);
  ASSERT_TRUE(is_error(run, "dependencies_unavailable", 1)) << run.describe();
  EXPECT_EQ(run.json()["error"]["dependencies"], nlohmann::json::array({"nimble_options"}));

  std::ofstream(path / "mix.lock") << lock_of({"decimal", "money_fmt", "nimble_options"});
  fs::remove(m_mirror.dir / "tarballs" / "nimble_options-1.1.1.tar");
  auto missing = compile_with_mirror(path);
  ASSERT_TRUE(is_error(missing, "dependencies_unavailable", 1)) << missing.describe();
  auto error = missing.json()["error"];
  EXPECT_EQ(error["dependencies"],
            nlohmann::json::array({"nimble_options (nimble_options-1.1.1.tar)"}));
  EXPECT_NE(error["reason"].get<std::string>().find("mirror"), std::string::npos);

  // Without any mirror.
  auto none = compile(path, {}, with_env({{"SANDBOX_PACKAGE_MIRROR", std::nullopt}}));
  ASSERT_TRUE(is_error(none, "dependencies_unavailable", 1)) << none.describe();
  EXPECT_NE(none.json()["error"]["reason"].get<std::string>().find("--package-mirror"),
            std::string::npos);
}

TEST_F(Dependencies, ATamperedLockOrPackageFailsVerificationAndNothingCompiles)
{
  auto path = shop("shop", "shop", "Shop");
  // The lock pins another outer checksum for decimal.
  auto lock = lock_of({"decimal", "money_fmt", "nimble_options"});
  const auto& outer = m_mirror.built.at("decimal").outer_checksum;
  std::string forged(outer.size(), 'a');
  lock.replace(lock.find(outer), outer.size(), forged);
  std::ofstream(path / "mix.lock") << lock;
  auto run = compile_with_mirror(path);
  ASSERT_TRUE(is_error(run, "dependency_verification_failed", 1)) << run.describe();
  auto error = run.json()["error"];
  EXPECT_EQ(error["dependency"], "decimal");
  EXPECT_EQ(error["version"], "3.1.1");
  EXPECT_EQ(error["expected"], forged);
  EXPECT_EQ(error["actual"], outer);

  // A package whose CHECKSUM does not match its contents, pinned as it is.
  auto spec = money_fmt_package();
  spec.checksum_file = std::string(64, 'B');
  add_package(spec);
  std::ofstream(path / "mix.lock") << lock_of({"decimal", "money_fmt", "nimble_options"});
  auto inner = compile_with_mirror(path);
  ASSERT_TRUE(is_error(inner, "dependency_verification_failed", 1)) << inner.describe();
  EXPECT_EQ(inner.json()["error"]["dependency"], "money_fmt");
  auto store = sandbox({"cache", "packages", "--json"});
  EXPECT_EQ(store.json()["builds"], 0) << store.out;
}

TEST_F(Dependencies, UnsafeArchiveEntriesAreRefusedWithCorrectChecksums)
{
  using sandbox::testing::hostile_absolute;
  using sandbox::testing::hostile_dot_dot;
  using sandbox::testing::hostile_symlink;
  auto outside = scratch() / "escaped";
  std::vector<std::pair<std::string, sandbox::testing::HexRawEntry>> cases = {
    {"absolute", hostile_absolute((scratch() / "absolute").string())},
    {"..", hostile_dot_dot("../../escaped")},
    {"symlink", hostile_symlink("lib/link", "/etc")},
  };
  int index = 0;
  for (const auto& [label, entry] : cases) {
    auto spec = money_fmt_package();
    spec.raw_entries = {entry};
    add_package(spec);
    auto path = shop("shop-" + std::to_string(index++), "shop", "Shop");
    auto run = compile_with_mirror(path);
    ASSERT_TRUE(is_error(run, "dependency_verification_failed", 1)) << label << run.describe();
    auto error = run.json()["error"];
    EXPECT_EQ(error["dependency"], "money_fmt") << label;
    EXPECT_NE(error["reason"].get<std::string>().find("unsafe"), std::string::npos)
      << label << error;
    EXPECT_FALSE(fs::exists(scratch() / "absolute")) << label;
    EXPECT_FALSE(fs::exists(outside)) << label;
  }
}

TEST_F(Dependencies, AHostileDependencyIsJudgedAndTheJailHoldsWhenTheScanIsOff)
{
  auto secret = scratch() / "secret.txt";
  std::ofstream(secret) << "TOP-SECRET-VALUE\n";
  auto planted = scratch() / "planted";
  HexPackageSpec spec;
  spec.name = "evil_fmt";
  spec.version = "0.1.0";
  spec.files = {
    {"mix.exs",
     "defmodule EvilFmt.MixProject do\n  use Mix.Project\n"
     "  def project, do: [app: :evil_fmt, version: \"0.1.0\"]\nend\n",
     0644},
    {"lib/evil_fmt.ex",
     "defmodule EvilFmt do\n"
     "  @stolen File.read(\"" + secret.string() + "\")\n"
     "  @wrote File.write(\"" + planted.string() + "\", \"x\")\n"
     "  @socket :gen_tcp.connect({127, 0, 0, 1}, 9, [])\n"
     "  def stolen, do: inspect({@stolen, @wrote, @socket})\n"
     "end\n",
     0644}};
  add_package(spec);
  auto path = make_sandbox("victim", {{"mix.exs", "defmodule Victim.MixProject do\n"
                                                  "  use Mix.Project\n"
                                                  "  def project, do: [app: :victim, version: "
                                                  "\"0.1.0\", deps: [{:evil_fmt, \"~> 0.1\"}]]\n"
                                                  "end\n"},
                                      {"lib/victim.ex", "defmodule Victim do\n"
                                                        "  def run, do: EvilFmt.stolen()\nend\n"},
                                      {"mix.lock", lock_of({"evil_fmt"})}});
  auto judged = compile_with_mirror(path, {"--scan-scope", "all"});
  ASSERT_TRUE(is_error(judged, "security_threats_detected", 1)) << judged.describe();
  bool named = false;
  auto threats = judged.json()["error"]["threats"];
  for (const auto& threat : threats) {
    named = named || (threat.value("dependency", "") == "evil_fmt" &&
                      threat.value("file", "").starts_with("deps/evil_fmt/"));
  }
  EXPECT_TRUE(named) << judged.out;

  auto contained = compile_with_mirror(path, {"--no-security-scan"});
  ASSERT_EQ(contained.exit_code, 0) << contained.describe();
  EXPECT_FALSE(fs::exists(planted));
  auto ran = run_with_dependencies(contained.json(), "IO.puts(Victim.run())");
  EXPECT_EQ(ran.exit_code, 0) << ran.describe();
  EXPECT_EQ(ran.out.find("TOP-SECRET"), std::string::npos) << ran.out;
  EXPECT_NE(ran.out.find(":enoent"), std::string::npos) << ran.out;
}

TEST_F(Dependencies, AnUmbrellaWithAnInUmbrellaAndAHexDependency)
{
  auto path = make_sandbox(
    "umbrella",
    {{"mix.exs", "defmodule Store.MixProject do\n  use Mix.Project\n"
                 "  def project, do: [apps_path: \"apps\", version: \"0.1.0\", deps: []]\nend\n"},
     {"mix.lock", lock_of({"decimal"})},
     {"apps/prices/mix.exs",
      "defmodule Prices.MixProject do\n  use Mix.Project\n"
      "  def project, do: [app: :prices, version: \"0.1.0\", build_path: \"../../_build\",\n"
      "    deps_path: \"../../deps\", lockfile: \"../../mix.lock\",\n"
      "    deps: [{:decimal, \"~> 3.1\"}]]\nend\n"},
     {"apps/prices/lib/prices.ex",
      "defmodule Prices do\n  def total(a, b), do: Decimal.add(a, b) |> Decimal.to_string()\nend\n"},
     {"apps/web/mix.exs",
      "defmodule Web.MixProject do\n  use Mix.Project\n"
      "  def project, do: [app: :web, version: \"0.1.0\", build_path: \"../../_build\",\n"
      "    deps_path: \"../../deps\", lockfile: \"../../mix.lock\",\n"
      "    deps: [{:prices, in_umbrella: true}]]\nend\n"},
     {"apps/web/lib/web.ex",
      "defmodule Web do\n  def page, do: \"total \" <> Prices.total(\"1.5\", \"2.25\")\nend\n"}});
  auto run = compile_with_mirror(path);
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  auto names = beam_names(result);
  EXPECT_EQ(names, (std::vector<std::string>{"Elixir.Prices.beam", "Elixir.Web.beam"}));
  ASSERT_TRUE(result["app_file"].is_string()) << result;
  EXPECT_EQ(fs::path(result["app_file"].get<std::string>()).filename(), "prices.app");
  EXPECT_TRUE(fs::exists(result_ebin(result) / "web.app"));
  std::set<std::string> apps;
  for (const auto& file : result["app_files"]) {
    apps.insert(fs::path(file.get<std::string>()).filename().string());
  }
  EXPECT_EQ(apps, (std::set<std::string>{"prices.app", "web.app"})) << result["app_files"];
  auto deps = by_name(result);
  ASSERT_TRUE(deps.count("decimal")) << result["dependencies"];
  EXPECT_EQ(deps["decimal"]["source"], "hex");
  auto ran = run_with_dependencies(result, "IO.puts(Web.page())");
  EXPECT_EQ(ran.out, "total 3.75\n") << ran.describe();
}

TEST_F(Dependencies, AnUmbrellaOfInUmbrellaAppsAndAPathDependencyCompileWithoutAMirror)
{
  auto path = make_sandbox(
    "umbrella",
    {{"mix.exs", "defmodule Two.MixProject do\n  use Mix.Project\n"
                 "  def project, do: [apps_path: \"apps\", version: \"0.1.0\"]\nend\n"},
     {"apps/a/mix.exs", "defmodule A.MixProject do\n  use Mix.Project\n"
                        "  def project, do: [app: :a, version: \"0.1.0\", build_path: "
                        "\"../../_build\", deps_path: \"../../deps\",\n"
                        "    deps: [{:helper, path: \"../../vendor/helper\"}]]\nend\n"},
     {"apps/a/lib/a.ex", "defmodule A do\n  def hi, do: Helper.word() <> \"!\"\nend\n"},
     {"apps/b/mix.exs", "defmodule B.MixProject do\n  use Mix.Project\n"
                        "  def project, do: [app: :b, version: \"0.1.0\", build_path: "
                        "\"../../_build\", deps_path: \"../../deps\",\n"
                        "    deps: [{:a, in_umbrella: true}]]\nend\n"},
     {"apps/b/lib/b.ex", "defmodule B do\n  def hi, do: A.hi()\nend\n"},
     {"vendor/helper/mix.exs", "defmodule Helper.MixProject do\n  use Mix.Project\n"
                               "  def project, do: [app: :helper, version: \"1.2.3\"]\nend\n"},
     {"vendor/helper/lib/helper.ex", "defmodule Helper do\n  def word, do: \"hello\"\nend\n"}});
  auto run = compile(path, {}, with_env({{"SANDBOX_PACKAGE_MIRROR", std::nullopt}}));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto result = run.json();
  auto deps = by_name(result);
  ASSERT_TRUE(deps.count("helper")) << result["dependencies"];
  EXPECT_EQ(deps["helper"]["source"], "path");
  EXPECT_EQ(deps["helper"]["version"], "1.2.3");
  EXPECT_TRUE(fs::exists(fs::path(deps["helper"]["ebin"].get<std::string>()) / "Elixir.Helper.beam"));
  auto ran = run_with_dependencies(result, "IO.puts(B.hi())");
  EXPECT_EQ(ran.out, "hello!\n") << ran.describe();
}

TEST_F(Dependencies, AnHttpMirrorIsFetchedOncePerPackage)
{
  sandbox::testing::HttpServer server(m_mirror.dir);
  auto url = server.url();
  auto direct = with_env({{"no_proxy", "127.0.0.1"}, {"NO_PROXY", "127.0.0.1"}});
  auto first = compile(shop("shop", "shop", "Shop"), {"--package-mirror", url}, direct);
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  auto second = compile(shop("till", "till", "Till"), {"--package-mirror", url}, direct);
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  for (const auto& file : {"decimal-3.1.1.tar", "money_fmt-0.1.0.tar", "nimble_options-1.1.1.tar"}) {
    EXPECT_EQ(server.requests(std::string("/tarballs/") + file), 1) << file;
  }
}

TEST_F(Dependencies, TwoProjectsAtOnceCompileASharedPackageOnce)
{
  auto a = shop("shop", "shop", "Shop");
  auto b = shop("till", "till", "Till");
  auto one = std::async(std::launch::async, [&] { return compile_with_mirror(a); });
  auto two = std::async(std::launch::async, [&] { return compile_with_mirror(b); });
  auto ra = one.get();
  auto rb = two.get();
  ASSERT_EQ(ra.exit_code, 0) << ra.describe();
  ASSERT_EQ(rb.exit_code, 0) << rb.describe();
  auto da = by_name(ra.json());
  auto db = by_name(rb.json());
  for (const auto& name : {"decimal", "money_fmt", "nimble_options"}) {
    // Compiled by exactly one of the two.
    EXPECT_NE(da[name]["cached"].get<bool>(), db[name]["cached"].get<bool>()) << name;
  }
  EXPECT_EQ(sandbox({"cache", "packages", "--json"}).json()["builds"], 3);
}

TEST_F(Dependencies, IncrementalNoChangeIsAHitAndAnEditNeverRecompilesAPackage)
{
  auto path = shop("shop", "shop", "Shop");
  auto first = compile_with_mirror(path, {"--incremental"});
  ASSERT_EQ(first.exit_code, 0) << first.describe();
  EXPECT_EQ(first.json()["compilation_strategy"], "full");

  auto hit = compile_with_mirror(path, {"--incremental"});
  ASSERT_EQ(hit.exit_code, 0) << hit.describe();
  auto cached = hit.json();
  EXPECT_TRUE(cached["cache_hit"].get<bool>()) << cached;
  ASSERT_EQ(cached["dependencies"].size(), 3u) << cached;
  auto ran = run_with_dependencies(cached, "IO.puts(Shop.price(price: \"3.333\"))");
  EXPECT_EQ(ran.out, "3.33\n") << ran.describe();

  std::ofstream(path / "lib" / "shop.ex", std::ios::app) << "\ndefmodule Shop.Extra do\n"
                                                              "  def one, do: 1\nend\n";
  auto edited = compile_with_mirror(path, {"--incremental"});
  ASSERT_EQ(edited.exit_code, 0) << edited.describe();
  auto after = edited.json();
  EXPECT_FALSE(after["cache_hit"].get<bool>());
  EXPECT_EQ(beam_names(after),
            (std::vector<std::string>{"Elixir.Shop.Extra.beam", "Elixir.Shop.beam"}));
  for (const auto& [name, dep] : by_name(after)) {
    EXPECT_TRUE(dep["cached"].get<bool>()) << name;
  }
  EXPECT_EQ(sandbox({"cache", "packages", "--json"}).json()["builds"], 3);

  // Another lock (money_fmt no longer pinned to the same package): not a hit.
  auto spec = money_fmt_package();
  spec.version = "0.1.1";
  add_package(spec);
  auto lock = read_text(path / "mix.lock");
  auto at = lock.find("\"money_fmt\"");
  auto end = lock.find('\n', at);
  lock.replace(at, end - at, m_mirror.lock_lines.at("money_fmt"));
  std::ofstream(path / "mix.lock") << lock;
  auto relocked = compile_with_mirror(path, {"--incremental"});
  ASSERT_EQ(relocked.exit_code, 0) << relocked.describe();
  auto moved = relocked.json();
  EXPECT_FALSE(moved["cache_hit"].get<bool>());
  auto deps = by_name(moved);
  EXPECT_EQ(deps["money_fmt"]["version"], "0.1.1");
  EXPECT_FALSE(deps["money_fmt"]["cached"].get<bool>());
  EXPECT_TRUE(deps["decimal"]["cached"].get<bool>());
}

TEST_F(Dependencies, APackagesPrivComesBackBesideItsEbin)
{
  auto spec = money_fmt_package();
  spec.files.push_back({"priv/rates.txt", "EUR 1.0\n", 0644});
  spec.files[1].content = std::string(sandbox::testing::kMoneyFmtLib) +
                          "defmodule MoneyFmt.Rates do\n"
                          "  def read, do: File.read!(Path.join(:code.priv_dir(:money_fmt), \"rates.txt\"))\n"
                          "end\n";
  add_package(spec);
  auto run = compile_with_mirror(shop("shop", "shop", "Shop"));
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto ran = run_with_dependencies(run.json(), "IO.write(MoneyFmt.Rates.read())");
  EXPECT_EQ(ran.out, "EUR 1.0\n") << ran.describe();
}

TEST_F(Dependencies, PackagesPlacedWhileTheProjectWaitsNeverFollowALinkItPlanted)
{
  // The packages are in the store: the second compile places them while the
  // project's VM waits, and the project's own mix.exs keeps planting links
  // where they go, pointing at a host directory.
  ASSERT_EQ(compile_with_mirror(shop("first", "first", "First")).exit_code, 0);
  auto target = scratch() / "host-target";
  fs::create_directories(target);
  auto project = sandbox::testing::shop_project(m_mirror, "planter", "Planter");
  project["mix.exs"] =
    "spawn(fn ->\n"
    "  deps = System.get_env(\"MIX_DEPS_PATH\")\n"
    "  lib = Path.join(System.get_env(\"MIX_BUILD_PATH\"), \"lib\")\n"
    "  for _ <- 1..3000 do\n"
    "    for dir <- [deps, lib], app <- [\"decimal\", \"money_fmt\", \"nimble_options\"] do\n"
    "      File.mkdir_p(dir)\n"
    "      File.ln_s(\"" + target.string() + "\", Path.join(dir, app))\n"
    "    end\n"
    "    Process.sleep(1)\n"
    "  end\n"
    "end)\n" + project["mix.exs"];
  auto path = make_sandbox("planter", project);
  auto run = compile_with_mirror(path);
  EXPECT_TRUE(fs::is_empty(target)) << "something was written through a planted link";
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  auto ran = run_with_dependencies(run.json(), "IO.puts(Planter.price(price: \"1\"))");
  EXPECT_EQ(ran.out, "1.00\n") << ran.describe();
}

TEST_F(Dependencies, ACycleInTheLockAndAWeakerIsolationAreRefusedBeforeAnyBuild)
{
  for (const auto& [name, other] : {std::pair{"ping_pkg", "pong_pkg"}, std::pair{"pong_pkg", "ping_pkg"}}) {
    HexPackageSpec spec;
    spec.name = name;
    spec.version = "1.0.0";
    spec.requirements = {{other, "~> 1.0", false}};
    spec.files = {{"mix.exs", "defmodule P.MixProject do\n  use Mix.Project\n"
                              "  def project, do: [app: :" + std::string(name) +
                              ", version: \"1.0.0\"]\nend\n", 0644}};
    add_package(spec);
  }
  auto cyclic = make_sandbox("cyclic", {{"mix.exs", "defmodule Cyc.MixProject do\n  use Mix.Project\n"
                                                    "  def project, do: [app: :cyc, version: "
                                                    "\"0.1.0\", deps: [{:ping_pkg, \"~> 1.0\"}]]\n"
                                                    "end\n"},
                                        {"mix.lock", lock_of({"ping_pkg", "pong_pkg"})}});
  auto run = compile_with_mirror(cyclic);
  ASSERT_TRUE(is_error(run, "dependencies_unavailable", 1)) << run.describe();
  EXPECT_NE(run.json()["error"]["reason"].get<std::string>().find("cycle"), std::string::npos);

  auto weaker = compile_with_mirror(shop("shop", "shop", "Shop"), {"--isolation", "process_group"});
  EXPECT_EQ(weaker.json()["error"].value("option", ""), "isolation") << weaker.describe();
  EXPECT_EQ(sandbox({"cache", "packages", "--json"}).json()["builds"], 0);
}

} // namespace

} // namespace sandbox::test

namespace sandbox::test {

namespace {

// The same packages under Elixir 1.18: built by its Mix in the jail, stored
// under another key than 1.14's builds, and run in a fresh 1.18 VM.
TEST_F(Dependencies, HexDependenciesCompileUnderElixir118AndAreStoredApart)
{
  SKIP_WITHOUT_ELIXIR_1_18();
  auto system = compile_with_mirror(shop("shop14", "shop14", "Shop14"));
  ASSERT_EQ(system.exit_code, 0) << system.describe();
  auto modern = compile_with_mirror(shop("shop18", "shop18", "Shop18"),
                                    {"--toolchain", elixir_1_18()->string()});
  ASSERT_EQ(modern.exit_code, 0) << modern.describe();
  auto result = modern.json();
  EXPECT_EQ(result["toolchain"]["elixir"], "1.18.4");
  for (const auto& [name, dep] : by_name(result)) {
    EXPECT_FALSE(dep["cached"].get<bool>()) << name << ": a 1.14 build served a 1.18 compile";
  }
  std::vector<std::string> argv = {elixir_1_18()->string() + "/bin/elixir", "-pa",
                                   result_ebin(result).string()};
  for (const auto& dep : result["dependencies"]) {
    argv.push_back("-pa");
    argv.push_back(dep["ebin"].get<std::string>());
  }
  argv.emplace_back("-e");
  argv.emplace_back("IO.puts(Shop18.price(price: \"1.234\"))");
  RunOptions options = with_timeout(60'000);
  const char* path = std::getenv("PATH");
  options.env["PATH"] = elixir_1_18()->string() + "/bin:" + (path != nullptr ? path : "/usr/bin:/bin");
  auto ran = run_process(argv, options);
  EXPECT_EQ(ran.out, "1.23\n") << ran.describe();
  auto store = sandbox({"cache", "packages", "--json"});
  EXPECT_EQ(store.json()["builds"], 6) << store.out;
}

} // namespace

} // namespace sandbox::test
