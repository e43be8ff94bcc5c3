#include "deps/hex_tarball.h"
#include "support/hex_package.h"
#include "util/fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <gtest/gtest.h>
#include <optional>
#include <sstream>

namespace sandbox::deps {

namespace {

using testing::HexFile;
using testing::HexPackage;
using testing::HexPackageSpec;
using testing::HexRawEntry;

std::string slurp(const fs::path& path)
{
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

unsigned mode_of(const fs::path& path)
{
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

HexPackageSpec jason_spec()
{
  HexPackageSpec spec;
  spec.name = "jason";
  spec.version = "1.4.4";
  spec.requirements = {{"decimal", "~> 1.0 or ~> 2.0", true}};
  spec.files = {
      {"mix.exs", "defmodule Jason.MixProject do\nend\n", 0644},
      {"lib/jason.ex", "defmodule Jason do\nend\n", 0644},
      {"lib/jason/decoder.ex", std::string(100'000, 'x'), 0600},
      {"priv/run.sh", "#!/bin/sh\necho hi\n", 0750},
  };
  return spec;
}

class HexTarballTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    auto dir = util::TempDir::create("/tmp", "hex-tarball-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
    // dest sits in its own parent so a sibling that must stay absent is easy to name.
    fs::create_directories(root() / "deps");
  }

  [[nodiscard]] const fs::path& root() const { return m_dir->path(); }
  [[nodiscard]] fs::path dest() const { return root() / "deps" / "jason"; }

  HexPackage build(const HexPackageSpec& spec, const std::string& file = "pkg.tar")
  {
    auto package = testing::build_hex_package(spec, root() / file);
    EXPECT_TRUE(package) << (package ? "" : package.error());
    return package ? *package : HexPackage{};
  }

  // The lock entry, through the mix.lock line and the real parser.
  static HexLock lock_for(const HexPackageSpec& spec, const HexPackage& package)
  {
    auto text = testing::mix_lock_text({testing::mix_lock_line(spec, package)});
    auto lock = parse_mix_lock(text);
    EXPECT_TRUE(lock) << (lock ? "" : lock.error()) << "\n" << text;
    if (!lock || lock->hex.empty()) {
      return {};
    }
    return lock->hex.begin()->second;
  }

  // verify_and_unpack must fail with `reason` (a prefix), leave no dest and
  // write nothing beside it.
  core::DependencyVerificationFailed expect_refused(const HexPackage& package, const HexLock& lock,
                                                    const std::string& reason,
                                                    const UnpackLimits& limits = {})
  {
    auto result = verify_and_unpack(package.path, lock, dest(), limits);
    EXPECT_FALSE(result) << "accepted a package that should fail with: " << reason;
    if (result) {
      return {};
    }
    const auto& error = result.error();
    EXPECT_TRUE(error.reason.starts_with(reason))
        << "reason: " << error.reason << "\nwanted: " << reason;
    EXPECT_EQ(error.dependency, lock.app);
    EXPECT_EQ(error.version, lock.version);
    EXPECT_FALSE(fs::exists(fs::symlink_status(dest()))) << "dest left behind";
    EXPECT_FALSE(fs::exists(fs::symlink_status(root() / "deps" / "escaped")));
    EXPECT_FALSE(fs::exists(fs::symlink_status(root() / "escaped")));
    std::error_code ec;
    EXPECT_EQ(std::distance(fs::directory_iterator(root() / "deps", ec), fs::directory_iterator()),
              0)
        << "something was written beside dest";
    return error;
  }

  HexPackage build_hostile(HexRawEntry entry)
  {
    auto spec = jason_spec();
    spec.raw_entries.push_back(std::move(entry));
    return build(spec);
  }

private:
  std::optional<util::TempDir> m_dir;
};

TEST_F(HexTarballTest, GoodPackageRoundTrips)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);
  auto result = verify_and_unpack(package.path, lock, dest());
  ASSERT_TRUE(result) << result.error().reason << " " << result.error().actual;
  EXPECT_EQ(result->name, "jason");
  EXPECT_EQ(result->version, "1.4.4");
  EXPECT_EQ(result->app, "jason");
  EXPECT_EQ(result->build_tools, std::vector<std::string>{"mix"});

  for (const auto& file : spec.files) {
    EXPECT_EQ(slurp(dest() / file.path), file.content) << file.path;
  }
  EXPECT_EQ(mode_of(dest() / "mix.exs"), 0644u);
  EXPECT_EQ(mode_of(dest() / "lib/jason/decoder.ex"), 0644u);
  EXPECT_EQ(mode_of(dest() / "priv/run.sh"), 0755u);
  EXPECT_EQ(mode_of(dest()), 0755u);
  EXPECT_EQ(mode_of(dest() / "lib/jason"), 0755u);

  auto tree = util::list_tree(dest());
  ASSERT_TRUE(tree) << tree.error();
  std::vector<std::string> paths;
  for (const auto& entry : *tree) {
    paths.push_back(entry.relative.string());
  }
  // list_tree sorts by path components.
  EXPECT_EQ(paths, (std::vector<std::string>{"lib", "lib/jason", "lib/jason/decoder.ex",
                                             "lib/jason.ex", "mix.exs", "priv", "priv/run.sh"}));
}

TEST_F(HexTarballTest, LockLineCarriesEverything)
{
  auto spec = jason_spec();
  spec.name = "jason_core";
  spec.app = "jason";
  spec.build_tools = {"mix", "rebar3"};
  auto package = build(spec);
  EXPECT_EQ(package.outer_checksum, sha256_file(package.path).value_or(""));
  auto lock = lock_for(spec, package);
  EXPECT_EQ(lock.app, "jason");
  EXPECT_EQ(lock.package, "jason_core");
  EXPECT_EQ(lock.inner_checksum, package.inner_checksum);
  EXPECT_EQ(lock.outer_checksum, package.outer_checksum);
  EXPECT_EQ(lock.managers, (std::vector<std::string>{"mix", "rebar3"}));
  ASSERT_EQ(lock.requirements.size(), 1u);
  EXPECT_EQ(lock.requirements[0].app, "decimal");
  EXPECT_TRUE(lock.requirements[0].optional);

  auto result = verify_and_unpack(package.path, lock, dest());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(result->name, "jason_core");
  EXPECT_EQ(result->app, "jason");
  EXPECT_EQ(result->build_tools, (std::vector<std::string>{"mix", "rebar3"}));
}

TEST_F(HexTarballTest, SourceDirectoryIsCopied)
{
  auto source = root() / "src";
  fs::create_directories(source / "lib/deep/er");
  std::ofstream(source / "mix.exs") << "mix";
  std::ofstream(source / "lib/deep/er/x.ex") << "x";
  fs::create_symlink("/etc/passwd", source / "lib/link");
  HexPackageSpec spec;
  spec.name = "jason";
  spec.version = "1.4.4";
  spec.source_dir = source;
  auto package = build(spec);
  auto result = verify_and_unpack(package.path, lock_for(spec, package), dest());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(slurp(dest() / "mix.exs"), "mix");
  EXPECT_EQ(slurp(dest() / "lib/deep/er/x.ex"), "x");
  EXPECT_FALSE(fs::exists(fs::symlink_status(dest() / "lib/link")));
}

TEST_F(HexTarballTest, Sha256File)
{
  std::ofstream(root() / "abc") << "abc";
  EXPECT_EQ(sha256_file(root() / "abc").value_or(""),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(sha256_file(root() / "absent"));
  fs::create_symlink(root() / "abc", root() / "link");
  EXPECT_FALSE(sha256_file(root() / "link"));
}

TEST_F(HexTarballTest, OuterChecksumMismatch)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);
  lock.outer_checksum = std::string(64, 'a');
  auto error = expect_refused(package, lock, "outer checksum mismatch");
  EXPECT_EQ(error.expected, std::string(64, 'a'));
  EXPECT_EQ(error.actual, package.outer_checksum);
}

TEST_F(HexTarballTest, LockWithoutOuterChecksum)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);
  lock.outer_checksum.clear();
  expect_refused(package, lock, "lock has no outer checksum");
}

TEST_F(HexTarballTest, InnerChecksumMismatch)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);
  lock.inner_checksum = std::string(64, 'b');
  auto error = expect_refused(package, lock, "inner checksum mismatch");
  EXPECT_EQ(error.expected, std::string(64, 'b'));
  EXPECT_EQ(error.actual, package.inner_checksum);
}

TEST_F(HexTarballTest, ChecksumFileDoesNotMatchTheContents)
{
  auto spec = jason_spec();
  spec.checksum_file = std::string(64, 'C');
  auto package = build(spec);
  auto error =
      expect_refused(package, lock_for(spec, package), "CHECKSUM file does not match the contents");
  EXPECT_EQ(error.expected, std::string(64, 'c'));
  EXPECT_EQ(error.actual, package.inner_checksum);

  spec.checksum_file = "not hex";
  package = build(spec);
  expect_refused(package, lock_for(spec, package), "CHECKSUM file does not match the contents");
}

TEST_F(HexTarballTest, LowerCaseChecksumFileIsAccepted)
{
  auto spec = jason_spec();
  auto probe = build(spec, "probe.tar");
  spec.checksum_file = probe.inner_checksum; // lower-case
  auto package = build(spec);
  EXPECT_TRUE(verify_and_unpack(package.path, lock_for(spec, package), dest()));
}

TEST_F(HexTarballTest, MetadataNamesAnotherPackageOrVersion)
{
  auto spec = jason_spec();
  spec.metadata_name = "poison";
  auto package = build(spec);
  auto error = expect_refused(package, lock_for(spec, package), "metadata names another package");
  EXPECT_EQ(error.expected, "jason");
  EXPECT_EQ(error.actual, "poison");

  spec = jason_spec();
  spec.metadata_version = "9.9.9";
  package = build(spec);
  error = expect_refused(package, lock_for(spec, package), "metadata names another version");
  EXPECT_EQ(error.expected, "1.4.4");
  EXPECT_EQ(error.actual, "9.9.9");
}

TEST_F(HexTarballTest, UnsupportedTarballVersion)
{
  auto spec = jason_spec();
  spec.tarball_version = "2";
  auto package = build(spec);
  auto error = expect_refused(package, lock_for(spec, package), "unsupported tarball version");
  EXPECT_EQ(error.expected, "3");
  EXPECT_EQ(error.actual, "2");
}

TEST_F(HexTarballTest, OuterEntriesMustBeExactlyTheFour)
{
  for (const std::string missing : {"VERSION", "CHECKSUM", "metadata.config", "contents.tar.gz"}) {
    auto spec = jason_spec();
    spec.omit_outer = {missing};
    auto package = build(spec);
    expect_refused(package, lock_for(spec, package), "missing entry " + missing);
  }
  auto spec = jason_spec();
  spec.extra_outer = {{"VERSION", "3"}};
  auto package = build(spec);
  expect_refused(package, lock_for(spec, package), "duplicate entry VERSION");

  spec = jason_spec();
  spec.extra_outer = {{"evil.sh", "rm -rf /"}};
  package = build(spec);
  expect_refused(package, lock_for(spec, package), "unexpected entry evil.sh");
}

TEST_F(HexTarballTest, UnsafeEntriesAreRefused)
{
  auto check = [&](HexRawEntry entry, const std::string& reason) {
    SCOPED_TRACE(reason);
    auto spec = jason_spec();
    spec.raw_entries.push_back(std::move(entry));
    auto package = build(spec);
    expect_refused(package, lock_for(spec, package), reason);
  };
  check(testing::hostile_absolute((root() / "deps" / "escaped").string()),
        "unsafe entry: absolute path " + (root() / "deps" / "escaped").string());
  check(testing::hostile_dot_dot("../escaped"), "unsafe entry: .. in ../escaped");
  check(testing::hostile_dot_dot("lib/../../escaped"), "unsafe entry: .. in lib/../../escaped");
  check(testing::hostile_dot_dot("lib/.."), "unsafe entry: .. in lib/..");
  check(testing::hostile_symlink("lib/link", "../../escaped"), "unsafe entry: symlink lib/link");
  check(testing::hostile_hardlink("lib/hard", "mix.exs"), "unsafe entry: hard link");
  check(testing::hostile_device("lib/null"), "unsafe entry: device or fifo");
  check(testing::hostile_fifo("lib/fifo"), "unsafe entry: device or fifo");
  check({HexRawEntry::Type::block_device, "lib/blk", {}, 0644}, "unsafe entry: device or fifo");
  check({HexRawEntry::Type::file, "lib//double", "x", 0644}, "unsafe entry: unnormalised path");
  check({HexRawEntry::Type::file, "./mix2.exs", "x", 0644}, "unsafe entry: unnormalised path");
  check({HexRawEntry::Type::file, "lib/./x.ex", "x", 0644}, "unsafe entry: unnormalised path");
  check({HexRawEntry::Type::file, "lib/a\nb", "x", 0644}, "unsafe entry: control character");
  check({HexRawEntry::Type::file, "mix.exs", "again", 0644}, "duplicate entry mix.exs");
  check({HexRawEntry::Type::file, "mix.exs/inside", "x", 0644},
        "unsafe entry: path crosses a file");
}

TEST_F(HexTarballTest, SymlinkThenWriteThroughItIsRefused)
{
  // A classic: a link to outside, then a file "through" it. The link is
  // refused first; even if it were not, no step follows a link.
  auto spec = jason_spec();
  spec.raw_entries = {testing::hostile_symlink("lib/out", (root() / "deps").string()),
                      {HexRawEntry::Type::file, "lib/out/escaped", "x", 0644}};
  auto package = build(spec);
  expect_refused(package, lock_for(spec, package), "unsafe entry: symlink lib/out");
}

TEST_F(HexTarballTest, DirectoryEntriesAreCreatedWithFixedModes)
{
  auto spec = jason_spec();
  spec.files.clear();
  spec.raw_entries = {{HexRawEntry::Type::directory, "lib/", {}, 0700},
                      {HexRawEntry::Type::directory, "empty", {}, 0777},
                      {HexRawEntry::Type::file, "lib/a.ex", "a", 04755}};
  auto package = build(spec);
  auto result = verify_and_unpack(package.path, lock_for(spec, package), dest());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(mode_of(dest() / "lib"), 0755u);
  EXPECT_EQ(mode_of(dest() / "empty"), 0755u);
  EXPECT_EQ(mode_of(dest() / "lib/a.ex"), 0755u); // no setuid
}

TEST_F(HexTarballTest, NonAsciiNamesRoundTrip)
{
  auto spec = jason_spec();
  spec.files.push_back({"lib/caf\xc3\xa9.ex", "# caf\xc3\xa9\n", 0644});
  spec.files.push_back({"priv/raw\xff", "bytes", 0644});
  auto package = build(spec);
  auto result = verify_and_unpack(package.path, lock_for(spec, package), dest());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(slurp(dest() / "lib/caf\xc3\xa9.ex"), "# caf\xc3\xa9\n");
  EXPECT_EQ(slurp(dest() / "priv/raw\xff"), "bytes");
}

TEST_F(HexTarballTest, LimitsAreEnforced)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);

  UnpackLimits limits;
  limits.max_files = 5; // 4 files and 3 directories
  expect_refused(package, lock, "too many files", limits);

  limits = {};
  limits.max_file_bytes = 50'000;
  auto error = expect_refused(package, lock, "file too large", limits);
  EXPECT_EQ(error.expected, "<= 50000");

  limits = {};
  limits.max_total_bytes = 100'010;
  expect_refused(package, lock, "package too large", limits);

  limits = {};
  limits.max_tarball_bytes = 1000;
  expect_refused(package, lock, "tarball too large", limits);

  limits = {};
  limits.max_metadata_bytes = 100;
  expect_refused(package, lock, "metadata too large", limits);

  limits = {};
  limits.max_files = 7;
  limits.max_total_bytes = 100'000 + 200;
  EXPECT_TRUE(verify_and_unpack(package.path, lock, dest(), limits));
}

TEST_F(HexTarballTest, CompressionBombStopsAtTheCap)
{
  auto spec = jason_spec();
  spec.files = {{"big", std::string(8u << 20, '\0'), 0644}};
  auto package = build(spec);
  EXPECT_LT(fs::file_size(package.path), 64u << 10);
  UnpackLimits limits;
  limits.max_total_bytes = 1u << 20;
  expect_refused(package, lock_for(spec, package), "package too large", limits);
}

TEST_F(HexTarballTest, TruncatedOrCorruptFilesAreCleanErrors)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);
  auto bytes = slurp(package.path);

  auto refuse_bytes = [&](const std::string& data, const std::string& reason) {
    SCOPED_TRACE(reason);
    std::ofstream(root() / "bad.tar", std::ios::binary | std::ios::trunc) << data;
    HexPackage bad{root() / "bad.tar", package.inner_checksum,
                   sha256_file(root() / "bad.tar").value_or("")};
    auto bad_lock = lock;
    bad_lock.outer_checksum = bad.outer_checksum;
    return expect_refused(bad, bad_lock, reason);
  };
  refuse_bytes(bytes.substr(0, bytes.size() / 2), "corrupt archive");
  refuse_bytes(bytes.substr(0, 700), "corrupt archive");
  refuse_bytes(std::string(4096, '\x5a'), "corrupt archive");
  refuse_bytes("", "corrupt archive");
  std::string flipped = bytes;
  flipped[100] ^= 0x55; // inside the first header: its checksum fails
  refuse_bytes(flipped, "corrupt archive");
}

TEST_F(HexTarballTest, CorruptContentsAreCleanErrors)
{
  auto spec = jason_spec();
  spec.gzip_contents = false;
  auto package = build(spec);
  expect_refused(package, lock_for(spec, package), "corrupt archive");
}

TEST_F(HexTarballTest, TruncatedOrGarbageContentsAreCleanErrors)
{
  auto spec = jason_spec();
  auto contents = testing::hex_contents(spec);
  ASSERT_TRUE(contents) << contents.error();
  // Cut inside the last file: the files before it are written, then removed.
  spec.contents_tar_gz = contents->substr(0, contents->size() - 30);
  auto package = build(spec);
  expect_refused(package, lock_for(spec, package), "corrupt archive");

  spec.contents_tar_gz = std::string(2000, '\x1f');
  package = build(spec);
  expect_refused(package, lock_for(spec, package), "corrupt archive");

  spec.contents_tar_gz = std::string();
  package = build(spec);
  expect_refused(package, lock_for(spec, package), "corrupt archive");
}

TEST_F(HexTarballTest, DestinationMustNotExist)
{
  auto spec = jason_spec();
  auto package = build(spec);
  fs::create_directories(dest());
  std::ofstream(dest() / "keep") << "mine";
  auto result = verify_and_unpack(package.path, lock_for(spec, package), dest());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().reason, "destination already exists");
  EXPECT_EQ(slurp(dest() / "keep"), "mine");
}

TEST_F(HexTarballTest, TarballMustBeARegularFile)
{
  auto spec = jason_spec();
  auto package = build(spec);
  auto lock = lock_for(spec, package);
  fs::create_symlink(package.path, root() / "link.tar");
  HexPackage linked{root() / "link.tar", package.inner_checksum, package.outer_checksum};
  expect_refused(linked, lock, "cannot read the tarball");
  HexPackage absent{root() / "absent.tar", package.inner_checksum, package.outer_checksum};
  expect_refused(absent, lock, "cannot read the tarball");
}

TEST_F(HexTarballTest, MetadataAsIoLibPrettyWritesIt)
{
  auto spec = jason_spec();
  spec.metadata_config = R"(%% a comment
{<<"app">>,<<"jason">>}.
{<<"build_tools">>,[<<"mix">>]}.
{<<"description">>,
 <<"A blazing fast JSON parser and generator in pure Elixir, "
   "with a long description split by the printer. "/utf8>>}.
{<<"elixir">>,<<"~> 1.11">>}.
{<<"extra">>,#{<<"k">> => [1,2.5,-3,16#ff,1.0e-3,'quoted atom',"str"]}}.
{<<"files">>,[<<"lib">>,<<"lib/jason.ex">>,<<0,255>>,<<>>]}.
{<<"links">>,[{<<"GitHub">>,<<"https://github.com/michalmuskala/jason">>}]}.
{<<"name">>,<<"jason">>}.
{<<"notes">>,<<"caf\x{e9} \"q\" \\ \101\n"/utf8>>}.
{<<"requirements">>,
 [[{<<"app">>,<<"decimal">>},
   {<<"name">>,<<"decimal">>},
   {<<"optional">>,true},
   {<<"repository">>,<<"hexpm">>},
   {<<"requirement">>,<<"~> 1.0 or ~> 2.0">>}]]}.
{<<"version">>,<<"1.4.4">>}.
)";
  auto package = build(spec);
  auto result = verify_and_unpack(package.path, lock_for(spec, package), dest());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(result->name, "jason");
  EXPECT_EQ(result->version, "1.4.4");
  EXPECT_EQ(result->build_tools, std::vector<std::string>{"mix"});
}

// Printed by io_lib_pretty:print/2 as hex_core does (a UTF-8 description
// comes out as a byte list, long terms wrap).
TEST_F(HexTarballTest, MetadataPrintedByErlang)
{
  auto spec = jason_spec();
  spec.metadata_config = R"({<<"app">>,<<"jason">>}.
{<<"build_tools">>,[<<"mix">>]}.
{<<"description">>,
 <<65,32,98,108,97,122,105,110,103,32,102,97,115,116,32,74,83,79,78,32,112,97,
   114,115,101,114,32,97,110,100,32,103,101,110,101,114,97,116,111,114,32,105,
   110,32,112,117,114,101,32,69,108,105,120,105,114,32,226,128,148,32,119,105,
   116,104,32,195,188,110,195,175,99,111,100,101,32,97,110,100,32,97,32,34,
   113,117,111,116,101,34,32,97,110,100,32,97,32,118,101,114,121,32,108,111,
   110,103,32,108,105,110,101,32,116,104,97,116,32,103,111,101,115,32,111,110,
   32,97,110,100,32,111,110,32,97,110,100,32,111,110,32,97,110,100,32,111,110,
   32,97,110,100,32,111,110,32,97,110,100,32,111,110,32,97,110,100,32,111,110,
   32,97,110,100,32,111,110,32,97,110,100,32,111,110,32,97,110,100,32,111,110>>}.
{<<"elixir">>,<<"~> 1.11">>}.
{<<"extra">>,[{<<"n">>,1.5},{<<"b">>,<<1,2,200>>}]}.
{<<"files">>,
 [<<"lib">>,<<"lib/jason.ex">>,<<"lib/jason/codegen.ex">>,
  <<"lib/jason/decoder.ex">>,<<"lib/jason/encode.ex">>,
  <<"lib/jason/encoder.ex">>,<<"lib/jason/formatter.ex">>,
  <<"lib/jason/fragment.ex">>,<<"lib/jason/helpers.ex">>,
  <<"lib/jason/ordered_object.ex">>,<<"lib/jason/sigil.ex">>,<<"mix.exs">>,
  <<"README.md">>,<<"LICENSE">>,<<"CHANGELOG.md">>]}.
{<<"licenses">>,[<<"Apache-2.0">>]}.
{<<"links">>,[{<<"GitHub">>,<<"https://github.com/michalmuskala/jason">>}]}.
{<<"name">>,<<"jason">>}.
{<<"requirements">>,
 [[{<<"app">>,<<"decimal">>},
   {<<"name">>,<<"decimal">>},
   {<<"optional">>,true},
   {<<"repository">>,<<"hexpm">>},
   {<<"requirement">>,<<"~> 1.0 or ~> 2.0">>}]]}.
{<<"version">>,<<"1.4.4">>}.
)";
  auto package = build(spec);
  auto result = verify_and_unpack(package.path, lock_for(spec, package), dest());
  ASSERT_TRUE(result) << result.error().reason;
  EXPECT_EQ(result->name, "jason");
  EXPECT_EQ(result->version, "1.4.4");
  EXPECT_EQ(result->app, "jason");
  EXPECT_EQ(result->build_tools, std::vector<std::string>{"mix"});
}

TEST_F(HexTarballTest, AmbiguousOrHostileMetadataIsRefused)
{
  auto refuse_metadata = [&](const std::string& metadata, const std::string& reason) {
    SCOPED_TRACE(metadata);
    auto spec = jason_spec();
    spec.metadata_config = metadata;
    auto package = build(spec);
    expect_refused(package, lock_for(spec, package), reason);
  };
  const std::string name = "{<<\"name\">>,<<\"jason\">>}.\n";
  const std::string version = "{<<\"version\">>,<<\"1.4.4\">>}.\n";
  refuse_metadata(name + name + version, "corrupt metadata.config: the key name appears twice");
  refuse_metadata(version, "corrupt metadata.config: no name");
  refuse_metadata(name, "corrupt metadata.config: no version");
  refuse_metadata(name + version + "{<<\"app\">>,os:cmd(\"id\")}.\n",
                  "corrupt metadata.config: line 3");
  refuse_metadata(name + version + "{<<\"x\">>,fun() -> ok end}.\n", "corrupt metadata.config");
  refuse_metadata(name + version + "{<<\"x\">>,<<\"unterminated>>}.\n",
                  "corrupt metadata.config: line 3: unterminated");
  refuse_metadata(name + version + "{<<\"x\">>,<<300>>}.\n", "corrupt metadata.config");
  refuse_metadata(name + version + "{<<\"x\">>,[a|b]}.\n", "corrupt metadata.config");
  refuse_metadata(name + "{<<\"version\">>,<<\"1.4.4\">>}", "corrupt metadata.config");
  refuse_metadata(name + version + std::string(200, '[') + std::string(200, ']') + ".\n",
                  "corrupt metadata.config");
  refuse_metadata(name + version + "{<<\"app\">>,<<\"../evil\">>}.\n",
                  "metadata has an invalid app name");
  refuse_metadata(std::string("{<<\"name\">>,<<\"jas\xff\">>}.\n") + version,
                  "metadata names another package");
}

} // namespace

} // namespace sandbox::deps
