// Replays tests/data/beam/regressions: inputs the fuzzer found (crash-*,
// timeout-*, leak-*, fuzz-*) and hand-made edge cases (make_regressions.py).
// Files named valid-* must parse; every other one must be refused with a
// reason. Either way parse_beam must return, which is the point.

#include "beam/beam.h"
#include "beam_fixtures.h"

#include <algorithm>
#include <gtest/gtest.h>

namespace sandbox::beam {
namespace {

using namespace testing;

std::vector<fs::path> regression_files()
{
  std::vector<fs::path> files;
  const fs::path dir = fs::path(SANDBOX_TEST_DATA) / "beam" / "regressions";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) {
      files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(BeamRegressions, EveryFileParsesOrIsRefusedWithAReason)
{
  const auto files = regression_files();
  ASSERT_FALSE(files.empty()) << "no files in " << SANDBOX_TEST_DATA << "/beam/regressions";
  std::size_t valid = 0;
  for (const auto& path : files) {
    SCOPED_TRACE(path.filename().string());
    const auto bytes = read_bytes(path);
    auto info = parse_beam(bytes);
    if (path.filename().string().starts_with("valid-")) {
      ++valid;
      ASSERT_TRUE(info) << info.error().reason;
      EXPECT_FALSE(info->module.empty());
      EXPECT_EQ(info->module, info->atoms.front());
    } else {
      ASSERT_FALSE(info) << "accepted; rename it valid-* if that is right";
      EXPECT_FALSE(info.error().reason.empty());
    }
  }
  EXPECT_GT(valid, 0u);
}

// The hand-made files pin exact reasons for the cases where arithmetic
// could wrap or an allocation could follow a declared size.
TEST(BeamRegressions, HandMadeEdgeCasesGiveTheirReasons)
{
  const fs::path dir = fs::path(SANDBOX_TEST_DATA) / "beam" / "regressions";
  const auto reason = [&](std::string_view name) {
    auto info = parse_beam(read_bytes(dir / std::string(name)));
    return info ? "<parsed>" : info.error().reason;
  };
  EXPECT_EQ(reason("chunk-size-ffffffff.beam"),
            "chunk AtU8 at offset 12 declares 4294967295 bytes (4294967296 with padding) but "
            "only 0 remain");
  EXPECT_EQ(reason("atom-count-int32-min.beam"),
            "chunk AtU8: declares 2147483648 atoms, more than the limit of 1048576");
  EXPECT_EQ(reason("import-count-wraps-32-bits.beam"),
            "chunk ImpT: declares 357913942 imports (4294967304 bytes) but 8 bytes follow");
  EXPECT_EQ(reason("litt-declares-4-gib.beam"),
            "chunk LitT: declares 4294967295 uncompressed bytes, more than the limit of 67108864");
  EXPECT_EQ(reason("litt-zip-bomb.beam"), "chunk LitT: 8388604 bytes after the last literal");
  EXPECT_EQ(reason("litt-literal-size-wraps.beam"),
            "chunk LitT: literal 0 declares 4294967295 bytes but only 1 remain");
  EXPECT_EQ(reason("code-header-size-ffffffff.beam"),
            "chunk Code: header of 4294967295 bytes does not fit in the 26 bytes after its size "
            "field");
  EXPECT_EQ(reason("compact-atom-length-nested-form.beam"),
            "chunk AtU8: the length of atom 1 uses the 9-or-more-byte number form");
  EXPECT_EQ(reason("empty-form.beam"), "missing atom table: no AtU8 or Atom chunk");
}

} // namespace
} // namespace sandbox::beam
