// parse_beam on damaged copies of a real erlc output: each mutation must be
// refused with a reason that names what is wrong.

#include "beam/beam.h"
#include "beam_fixtures.h"

#include <gtest/gtest.h>

namespace sandbox::beam {
namespace {

using namespace testing;

// Predicates for EXPECT_PRED2, which prints both arguments on failure.
bool starts_with(const std::string& text, const std::string& prefix)
{
  return text.starts_with(prefix);
}

bool contains(const std::string& text, const std::string& part)
{
  return text.find(part) != std::string::npos;
}

class BeamMutation : public ::testing::Test {
protected:
  void SetUp() override
  {
    const auto& fixture = erlang_fixture();
    SANDBOX_REQUIRE_FIXTURE(fixture);
    m_bytes = read_bytes(*fixture.beam);
    m_chunks = split_chunks(m_bytes);
    auto info = parse_beam(m_bytes);
    ASSERT_TRUE(info) << info.error().reason;
    m_info = *info;
  }

  // The reason parse_beam gives, or "<parsed>" if it accepted the bytes.
  static std::string reason(std::string_view bytes, const Limits& limits = {})
  {
    auto info = parse_beam(bytes, limits);
    return info ? "<parsed>" : info.error().reason;
  }

  std::string rebuilt() const { return assemble(m_chunks); }
  std::string& chunk(std::string_view id) { return find(m_chunks, id).data; }

  // Replaces the literal table with `table` (inflated form), compressed.
  void set_literal_table(std::string_view table)
  {
    chunk("LitT") = be32(static_cast<std::uint32_t>(table.size())) + zlib_compress(table);
  }
  std::string literal_table()
  {
    const auto& data = chunk("LitT");
    return zlib_inflate(std::string_view(data).substr(4), get_be32(data, 0));
  }

  std::string m_bytes;
  std::vector<RawChunk> m_chunks;
  BeamInfo m_info;
};

TEST_F(BeamMutation, ReassemblyAloneKeepsTheFileValid)
{
  EXPECT_EQ(rebuilt(), m_bytes);
}

TEST_F(BeamMutation, TruncatedFileIsRefusedAtEveryCutPoint)
{
  EXPECT_EQ(reason(""), "file is empty");
  EXPECT_EQ(reason(m_bytes.substr(0, 3)), "not a BEAM file: starts with 'FOR', expected 'FOR1'");
  for (std::size_t cut : {4u, 8u, 11u}) {
    EXPECT_EQ(reason(m_bytes.substr(0, cut)),
              "file is " + std::to_string(cut) + " bytes, too short for the 12-byte FOR1 header");
  }
  const std::size_t size = m_bytes.size();
  for (std::size_t cut :
       {std::size_t{12}, std::size_t{13}, std::size_t{20}, size / 2, size - 4, size - 1}) {
    EXPECT_EQ(reason(m_bytes.substr(0, cut)), "FOR1 header declares " + std::to_string(size - 8) +
                                                  " bytes but the file holds " +
                                                  std::to_string(cut - 8) + " after it")
        << "cut at " << cut;
  }
}

// A truncated file whose FOR1 length was fixed up to match must still be
// caught, by the chunk that no longer fits.
TEST_F(BeamMutation, TruncatedFileWithFixedLengthHitsTheCutChunk)
{
  for (std::size_t cut : {m_bytes.size() / 2, m_bytes.size() - 4}) {
    std::string bytes = m_bytes.substr(0, cut);
    put_be32(bytes, 4, static_cast<std::uint32_t>(cut - 8));
    const auto why = reason(bytes);
    EXPECT_TRUE(contains(why, "with padding) but only") || contains(why, "chunk header at offset"))
        << "cut at " << cut << ": " << why;
  }
}

TEST_F(BeamMutation, WrongMagicIsRefused)
{
  std::string bytes = m_bytes;
  bytes[3] = '2';
  EXPECT_EQ(reason(bytes), "not a BEAM file: starts with 'FOR2', expected 'FOR1'");
  bytes = m_bytes;
  bytes[0] = '\x1f';
  EXPECT_EQ(reason(bytes), "not a BEAM file: starts with '\\x1fOR1', expected 'FOR1'");
  bytes = m_bytes;
  bytes.replace(8, 4, "BEAN");
  EXPECT_EQ(reason(bytes), "IFF form type is 'BEAN', expected 'BEAM'");
}

TEST_F(BeamMutation, For1LengthMismatchIsRefused)
{
  std::string bytes = m_bytes;
  const auto declared = static_cast<std::uint32_t>(m_bytes.size() - 8);
  put_be32(bytes, 4, declared + 4);
  EXPECT_EQ(reason(bytes), "FOR1 header declares " + std::to_string(declared + 4) +
                               " bytes but the file holds " + std::to_string(declared) +
                               " after it");
  // Trailing bytes after a well-formed form are refused the same way.
  EXPECT_PRED2(starts_with, reason(m_bytes + std::string(4, '\0')), "FOR1 header declares");
}

TEST_F(BeamMutation, ChunkSizePastTheEndIsRefused)
{
  const Chunk& last = m_info.chunks.back();
  const std::size_t header = last.offset - 8;
  const std::size_t remaining = m_bytes.size() - last.offset;
  for (std::uint32_t size : {static_cast<std::uint32_t>(remaining + 1), 0xfffffffdu, 0xffffffffu}) {
    std::string bytes = m_bytes;
    put_be32(bytes, header + 4, size);
    const std::uint64_t padded = (std::uint64_t{size} + 3) & ~std::uint64_t{3};
    EXPECT_EQ(reason(bytes), "chunk " + last.id + " at offset " + std::to_string(header) +
                                 " declares " + std::to_string(size) + " bytes (" +
                                 std::to_string(padded) + " with padding) but only " +
                                 std::to_string(remaining) + " remain");
  }
}

TEST_F(BeamMutation, ChunkHeaderCutShortIsRefused)
{
  std::string bytes = m_bytes + "Junk";
  put_be32(bytes, 4, static_cast<std::uint32_t>(bytes.size() - 8));
  EXPECT_EQ(reason(bytes), "chunk header at offset " + std::to_string(m_bytes.size()) +
                               " is cut short: 4 bytes left, 8 needed");
}

TEST_F(BeamMutation, MissingRequiredChunksAreNamed)
{
  for (std::string_view id : {"Code", "StrT", "ImpT", "ExpT"}) {
    auto chunks = m_chunks;
    remove(chunks, id);
    EXPECT_EQ(reason(assemble(chunks)), "missing required chunk " + std::string(id));
  }
  auto chunks = m_chunks;
  remove(chunks, "AtU8");
  EXPECT_EQ(reason(assemble(chunks)), "missing atom table: no AtU8 or Atom chunk");
}

TEST_F(BeamMutation, DuplicateChunkIsRefused)
{
  auto chunks = m_chunks;
  chunks.push_back(find(chunks, "ImpT"));
  {
    const auto why = reason(assemble(chunks));
    EXPECT_PRED2(starts_with, why, "chunk ImpT appears twice (at offsets ");
    EXPECT_PRED2(contains, why, std::to_string(m_bytes.size()));
  }
}

TEST_F(BeamMutation, BothAtomTablesAreRefused)
{
  m_chunks.push_back(RawChunk{"Atom", find(m_chunks, "AtU8").data});
  EXPECT_EQ(reason(rebuilt()), "both an AtU8 and a legacy Atom chunk are present");
}

TEST_F(BeamMutation, ImportAtomIndexOutOfRangeIsRefused)
{
  const auto atoms = std::to_string(m_info.atoms.size());
  // Patch bytes in place: import 0's module atom, then import 1's function atom.
  const Chunk* imports = nullptr;
  for (const auto& c : m_info.chunks) {
    if (c.id == "ImpT") {
      imports = &c;
    }
  }
  ASSERT_NE(imports, nullptr);
  ASSERT_GE(m_info.imports.size(), 2u);
  std::string bytes = m_bytes;
  put_be32(bytes, imports->offset + 4, 9999);
  EXPECT_EQ(reason(bytes),
            "chunk ImpT: import 0 names atom 9999 but the atom table has " + atoms + " atoms");
  bytes = m_bytes;
  put_be32(bytes, imports->offset + 4 + 12 + 4, 0);
  EXPECT_EQ(reason(bytes),
            "chunk ImpT: import 1 names atom 0 but the atom table has " + atoms + " atoms");
  bytes = m_bytes;
  put_be32(bytes, imports->offset + 4 + 8, 256);
  EXPECT_EQ(reason(bytes), "chunk ImpT: import 0 (" + m_info.imports[0].module + ":" +
                               m_info.imports[0].function + ") has arity 256, above 255");
}

TEST_F(BeamMutation, ImportCountNotMatchingTheChunkIsRefused)
{
  auto& imports = chunk("ImpT");
  const auto count = get_be32(imports, 0);
  put_be32(imports, 0, count + 1);
  EXPECT_EQ(reason(rebuilt()), "chunk ImpT: declares " + std::to_string(count + 1) + " imports (" +
                                   std::to_string((count + 1) * 12) + " bytes) but " +
                                   std::to_string(count * 12) + " bytes follow");
  put_be32(imports, 0, 0xffffffffu);
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk ImpT: declares 4294967295 imports");
  imports = std::string(2, '\0'); // shorter than the count itself
  EXPECT_EQ(reason(rebuilt()), "chunk ImpT: 2 bytes, too short for the entry count");
}

TEST_F(BeamMutation, ExportLabelAndArityAreChecked)
{
  auto& exports = chunk("ExpT");
  const std::string original = exports;
  put_be32(exports, 4 + 8, 0);
  {
    const auto why = reason(rebuilt());
    EXPECT_PRED2(starts_with, why, "chunk ExpT: export 0 (");
    EXPECT_PRED2(contains, why, ") points at label 0 but");
  }
  exports = original;
  put_be32(exports, 4 + 8, 0x7fffffff);
  EXPECT_PRED2(contains, reason(rebuilt()), "points at label 2147483647 but the code's labels are");
  exports = original;
  put_be32(exports, 4 + 4, 300);
  {
    const auto why = reason(rebuilt());
    EXPECT_PRED2(starts_with, why, "chunk ExpT: export 0 (");
    EXPECT_PRED2(contains, why, "/300) has arity 300, above 255");
  }
  exports = original;
  put_be32(exports, 4, 100000);
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk ExpT: export 0 names atom 100000 but");
  chunk("ExpT") = original;
  put_be32(chunk("LocT"), 4, 0);
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk LocT: local 0 names atom 0 but");
}

TEST_F(BeamMutation, HugeAtomCountIsRefusedBeforeAllocating)
{
  auto& atoms = chunk("AtU8");
  put_be32(atoms, 0, 0x7fffffff);
  EXPECT_EQ(reason(rebuilt()),
            "chunk AtU8: declares 2147483647 atoms, more than the limit of 1048576");
  // Within the limit but more atoms than the chunk has bytes.
  put_be32(atoms, 0, 1000000);
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: declares 1000000 atoms but only " +
                                   std::to_string(atoms.size() - 4) + " bytes follow");
  // The OTP 28 form negates the count: INT32_MIN must not overflow.
  put_be32(atoms, 0, 0x80000000u);
  EXPECT_EQ(reason(rebuilt()),
            "chunk AtU8: declares 2147483648 atoms, more than the limit of 1048576");
  Limits small;
  small.max_atoms = 3;
  EXPECT_EQ(reason(m_bytes, small), "chunk AtU8: declares " + std::to_string(m_info.atoms.size()) +
                                        " atoms, more than the limit of 3");
}

TEST_F(BeamMutation, AtomTableDefectsAreNamed)
{
  auto& atoms = chunk("AtU8");
  const std::string original = atoms;
  put_be32(atoms, 0, 0);
  EXPECT_EQ(reason(rebuilt()),
            "chunk AtU8: the atom table is empty, but atom 1 must name the module");
  atoms = original + "x";
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: 1 bytes after the last atom");
  atoms = original;
  atoms[5] = '\xff'; // first byte of atom 1
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: atom 1 is not valid UTF-8 (bad sequence at byte 0)");
  atoms = atom_table({"sample", "ok\xed\xa0\x80"}, false); // an encoded surrogate
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: atom 2 is not valid UTF-8 (bad sequence at byte 2)");
  atoms = atom_table({"sample", "\xc0\xaf"}, false); // overlong '/'
  EXPECT_PRED2(contains, reason(rebuilt()), "atom 2 is not valid UTF-8");
  atoms = atom_table({""}, false);
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: atom 1, the module name, is empty");
  atoms = be32(2) + "\x06sample\x09" + "abc";
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: atom 2 declares 9 bytes but only 3 remain");
  atoms = std::string(2, '\0');
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: 2 bytes, too short for the atom count");
}

TEST_F(BeamMutation, CompactAtomLengthDefectsAreNamed)
{
  auto& atoms = chunk("AtU8");
  atoms = atom_table({"sample", std::string(256, 'a')}, true);
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: atom 2 has 256 characters, more than 255");
  atoms = atom_table({"sample", std::string(1021, 'a')}, true);
  EXPECT_EQ(reason(rebuilt()),
            "chunk AtU8: atom 2 is 1021 bytes, more than 255 characters can take");
  // Tag a (2) instead of u (0) on the length of atom 2.
  atoms = be32(0u - 2u) + compact_u(6) + "sample" + "\x32" + "abc";
  EXPECT_EQ(reason(rebuilt()),
            "chunk AtU8: the length of atom 2 has compact-term tag 2, expected 0 (u)");
  // A two-byte length whose second byte is missing.
  atoms = be32(0u - 2u) + compact_u(6) + "sample" + "\x08";
  EXPECT_EQ(reason(rebuilt()), "chunk AtU8: the length of atom 2 is cut short");
  // The 9-or-more-byte number form.
  atoms = be32(0u - 1u) + "\xf8\x00" + std::string(9, '\0');
  EXPECT_EQ(reason(rebuilt()),
            "chunk AtU8: the length of atom 1 uses the 9-or-more-byte number form");
  // An 8-byte length that does not fit any atom.
  atoms = be32(0u - 1u) + "\xd8" + std::string(8, '\xff');
  EXPECT_PRED2(contains, reason(rebuilt()), "more than 255 characters can take");
}

TEST_F(BeamMutation, CodeHeaderDefectsAreNamed)
{
  auto& code = chunk("Code");
  const std::string original = code;
  put_be32(code, 0, 8);
  EXPECT_EQ(reason(rebuilt()), "chunk Code: header size 8 is below the minimum 16");
  code = original;
  put_be32(code, 0, 0xfffffff0u);
  EXPECT_EQ(reason(rebuilt()), "chunk Code: header of 4294967280 bytes does not fit in the " +
                                   std::to_string(original.size() - 4) +
                                   " bytes after its size field");
  code = original;
  put_be32(code, 4, 1);
  EXPECT_EQ(reason(rebuilt()), "chunk Code: instruction set 1, only 0 exists");
  code = original;
  put_be32(code, 8, 300);
  EXPECT_EQ(reason(rebuilt()), "chunk Code: highest opcode 300 is outside 1..255");
  code = original.substr(0, 20);
  EXPECT_EQ(reason(rebuilt()), "chunk Code: no instructions after the header");
  code = original.substr(0, original.size() - 1);
  {
    const auto why = reason(rebuilt());
    EXPECT_PRED2(starts_with, why, "chunk Code: code ends with byte ");
    EXPECT_PRED2(contains, why, "expected int_code_end (3)");
  }
  code = "abc";
  EXPECT_EQ(reason(rebuilt()), "chunk Code: 3 bytes, too short for the header size");
}

TEST_F(BeamMutation, LiteralTableAboveTheCapIsRefusedBeforeInflating)
{
  const auto declared = get_be32(chunk("LitT"), 0);
  Limits small;
  small.max_literal_bytes = declared - 1;
  EXPECT_EQ(reason(m_bytes, small), "chunk LitT: declares " + std::to_string(declared) +
                                        " uncompressed bytes, more than the limit of " +
                                        std::to_string(declared - 1));
  // 4 GiB declared over a few bytes of data: refused by the default cap.
  put_be32(chunk("LitT"), 0, 0xffffffffu);
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: declares 4294967295 uncompressed bytes, more than "
                               "the limit of 67108864");
}

TEST_F(BeamMutation, CorruptLiteralZlibIsRefused)
{
  auto& literals = chunk("LitT");
  const std::string original = literals;
  literals[4] = '\x00'; // zlib header byte CMF
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk LitT: zlib data is corrupt: ");
  literals = original;
  for (std::size_t i = 6; i < literals.size(); ++i) {
    literals[i] = static_cast<char>(literals[i] ^ 0x5a);
  }
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk LitT: zlib data is corrupt: ");
  literals = original.substr(0, original.size() / 2);
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk LitT: zlib data ends early, after ");
  literals = original + "xy";
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: 2 bytes after the end of the zlib data");
}

TEST_F(BeamMutation, LiteralSizeMismatchIsRefused)
{
  auto& literals = chunk("LitT");
  const auto declared = get_be32(literals, 0);
  put_be32(literals, 0, declared - 1);
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: inflates to more than the declared " +
                                   std::to_string(declared - 1) + " bytes");
  put_be32(literals, 0, declared + 1);
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: inflates to " + std::to_string(declared) +
                                   " bytes but declares " + std::to_string(declared + 1));
  put_be32(literals, 0, 0);
  EXPECT_EQ(reason(rebuilt()),
            "chunk LitT: declares 0 uncompressed bytes, too few for the literal count");
  literals = "ab";
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: 2 bytes, too short for the uncompressed size");
}

TEST_F(BeamMutation, LiteralEntriesAreChecked)
{
  const std::string table = literal_table();
  const auto count = get_be32(table, 0);
  std::string patched = table;
  put_be32(patched, 0, count + 1);
  set_literal_table(patched);
  EXPECT_EQ(reason(rebuilt()),
            "chunk LitT: the size of literal " + std::to_string(count) + " is cut short");
  patched = table;
  put_be32(patched, 0, 0x40000000u);
  set_literal_table(patched);
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: declares 1073741824 literals but only " +
                                   std::to_string(table.size() - 4) + " bytes follow");
  patched = table;
  patched[8] = 'x'; // version byte of literal 0
  set_literal_table(patched);
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: literal 0 does not start with the external term "
                               "format version byte 131");
  patched = table;
  put_be32(patched, 4, 0x7fffffff);
  set_literal_table(patched);
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: literal 0 declares 2147483647 bytes but only " +
                                   std::to_string(table.size() - 8) + " remain");
  set_literal_table(table + "z");
  EXPECT_EQ(reason(rebuilt()), "chunk LitT: 1 bytes after the last literal");
  set_literal_table(table);
  EXPECT_EQ(reason(rebuilt()), "<parsed>");
}

TEST_F(BeamMutation, FunTableIsChecked)
{
  auto& funs = chunk("FunT");
  ASSERT_GE(get_be32(funs, 0), 1u);
  const std::string original = funs;
  put_be32(funs, 4, 0);
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk FunT: fun 0 names atom 0 but");
  funs = original;
  put_be32(funs, 4 + 8, 0);
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk FunT: fun 0 points at label 0 but");
  funs = original;
  put_be32(funs, 4 + 16, 1000);
  EXPECT_PRED2(contains, reason(rebuilt()), "free variables; need free <= arity <= 255");
  funs = original + "x";
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk FunT: declares 1 funs (24 bytes) but 25");
}

TEST_F(BeamMutation, FileAboveTheSizeLimitIsRefused)
{
  Limits small;
  small.max_file_bytes = 100;
  EXPECT_EQ(reason(m_bytes, small),
            "file is " + std::to_string(m_bytes.size()) + " bytes, more than the limit of 100");
}

TEST_F(BeamMutation, NonPrintableChunkIdsAreEscapedInReasons)
{
  m_chunks.push_back(RawChunk{std::string("\n\x01\\Z", 4), "x"});
  m_chunks.push_back(RawChunk{std::string("\n\x01\\Z", 4), "y"});
  EXPECT_PRED2(starts_with, reason(rebuilt()), "chunk \\x0a\\x01\\x5cZ appears twice");
}

} // namespace
} // namespace sandbox::beam
