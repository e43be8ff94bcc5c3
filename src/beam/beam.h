#pragma once
// Reader and validator for BEAM files (the IFF container erlc and elixirc
// write). Everything a compile job produces passes through here before it is
// cached or handed to a VM, so every field of the file is treated as hostile:
// sizes are checked before they are used, allocations are bounded by Limits,
// and a malformed file yields a BeamError, never a crash or an exception.

#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::beam {

// A reason precise enough to find the bad byte, e.g. "chunk ImpT: import 3
// names atom 99 but the atom table has 12 atoms".
struct BeamError {
  std::string reason;
};

struct Import {
  std::string module;
  std::string function;
  std::uint32_t arity = 0;
};

struct Export {
  std::string function;
  std::uint32_t arity = 0;
  std::uint32_t label = 0;
};

// One chunk of the container: `offset` is where its data starts in the file
// (after the 8-byte chunk header), `size` excludes the padding to 4 bytes.
struct Chunk {
  std::string id;
  std::uint32_t offset = 0;
  std::uint32_t size = 0;
};

struct BeamInfo {
  std::string module;             // atom 1
  std::vector<std::string> atoms; // atom N of the file is atoms[N - 1]
  std::vector<Chunk> chunks;      // in file order
  std::vector<Import> imports;    // ImpT
  std::vector<Export> exports;    // ExpT
  std::vector<Export> locals;     // LocT; empty when the chunk is absent
  std::uint64_t literal_count = 0;
  // Lower-case hex of the module MD5 as beam_lib:md5/1 and
  // Module:module_info(md5) compute it; empty if MD5 is unavailable (FIPS).
  std::string md5;
};

// Caps on what a file may make the reader allocate.
struct Limits {
  std::uint64_t max_file_bytes = 64ull << 20;
  std::uint64_t max_literal_bytes = 64ull << 20; // inflated LitT
  std::uint32_t max_atoms = 1u << 20;
};

// Parses and validates an in-memory BEAM file.
std::expected<BeamInfo, BeamError> parse_beam(std::string_view bytes, const Limits& limits = {});

// Reads `path` (a regular file, never through a symlink in its last
// component, at most limits.max_file_bytes), parses it, and checks that the
// module is named after the file: Elixir.Foo.Bar.beam must hold
// 'Elixir.Foo.Bar', as the code server assumes when it loads by name.
std::expected<BeamInfo, BeamError> validate_beam_file(const std::filesystem::path& path,
                                                      const Limits& limits = {});

// Whether the module has an on_load function: the loader calls it as soon as
// the module is loaded, before anyone calls the module. `bytes` is the file
// `info` was parsed from. The instruction stream is decoded operand by
// operand; an opcode this reader does not know (a newer OTP's) or a
// malformed operand is an error, never a guess.
std::expected<bool, BeamError> has_on_load(std::string_view bytes, const BeamInfo& info);

// An operand of an instruction of the Code chunk, as the security audit
// reads it: an atom (`value` N is atoms[N - 1]; 0 is []), a literal (its
// index in the literal table), a register, a number. A list operand's
// elements stand in its place; a typed register is its register.
struct Operand {
  enum class Kind : std::uint8_t { unsigned_integer, integer, atom, x_register, y_register, label, literal, other };
  Kind kind = Kind::other;
  std::uint64_t value = 0;
};

// Called with each instruction: its opcode (OTP's genop.tab) and operands.
// Returning false stops the walk.
using InstructionVisitor = std::function<bool(std::uint8_t opcode, const std::vector<Operand>& operands)>;

// Walks the instruction stream of the Code chunk of `bytes` (the file `info`
// was parsed from) up to int_code_end, decoding it as has_on_load does: an
// opcode this reader does not know or a malformed operand is an error.
std::expected<void, BeamError> for_each_instruction(std::string_view bytes, const BeamInfo& info,
                                                    const InstructionVisitor& visit);

// The literal table (LitT) as the security audit needs it: the atoms each
// literal holds, and the external funs (fun M:F/A) written as literals,
// which call M:F/A with no entry in the import table.
struct LiteralFun {
  std::size_t literal = 0; // index in the literal table
  Import target;
};
struct Literals {
  std::vector<std::vector<std::string>> atoms; // atoms[i]: those of literal i, each once, none of a fun
  // The atoms of each tuple, list or map of any literal that holds more than
  // one ({'Elixir.System', cmd}); a keyword list's entries count as the list's.
  std::vector<std::vector<std::string>> groups;
  std::vector<LiteralFun> funs;
};

// Decodes every literal of `bytes` (the file `info` was parsed from) in the
// external term format, within `limits`. A term this reader cannot decode
// (a tag the compiler never writes: an atom cache reference, a compressed
// or a local term) is an error.
std::expected<Literals, BeamError> read_literals(std::string_view bytes, const BeamInfo& info,
                                                 const Limits& limits = {});

} // namespace sandbox::beam
