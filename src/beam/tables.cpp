#include "beam/byte_reader.h"
#include "beam/chunks.h"

namespace sandbox::beam::detail {

namespace {

// The VM's MAX_ARG: no function or call has more arguments.
constexpr std::uint32_t k_max_arity = 255;
// The sub-header the compiler writes: instruction set, highest opcode,
// label count, function count.
constexpr std::uint32_t k_min_code_header = 16;
// Opcodes are single bytes in the code stream, so no file can legitimately
// declare a higher one; the running VM applies its own, lower bound.
constexpr std::uint32_t k_max_opcode = 255;
constexpr std::uint8_t k_int_code_end = 3;

std::string atom_count_text(std::size_t atom_count)
{
  return std::to_string(atom_count) + (atom_count == 1 ? " atom" : " atoms");
}

// Reads a `u32 count` followed by exactly `count` entries of `entry_size`
// bytes; returns the count. Comparing count against remaining / entry_size
// avoids the multiplication overflowing.
std::expected<std::uint32_t, BeamError> read_table_count(ByteReader& reader,
                                                         const std::string& prefix,
                                                         std::string_view noun,
                                                         std::size_t entry_size)
{
  auto count = reader.u32();
  if (!count) {
    return std::unexpected(BeamError{prefix + std::to_string(reader.remaining()) +
                                     " bytes, too short for the entry count"});
  }
  const std::size_t remaining = reader.remaining();
  if (*count > remaining / entry_size || remaining != *count * entry_size) {
    return std::unexpected(
        BeamError{prefix + "declares " + std::to_string(*count) + " " + std::string(noun) + " (" +
                  std::to_string(static_cast<std::uint64_t>(*count) * entry_size) + " bytes) but " +
                  std::to_string(remaining) + " bytes follow"});
  }
  return *count;
}

bool atom_index_ok(std::uint32_t index, std::size_t atom_count)
{
  return index >= 1 && index <= atom_count;
}

bool label_ok(std::uint32_t label, std::uint32_t label_count)
{
  // Label 0 means "no label"; the header counts labels from 0.
  return label >= 1 && label < label_count;
}

std::string label_range_text(std::uint32_t label_count)
{
  if (label_count <= 1) {
    return "the code defines no labels";
  }
  return "the code's labels are 1.." + std::to_string(label_count - 1);
}

} // namespace

std::expected<CodeHeader, BeamError> parse_code_chunk(std::string_view data)
{
  const std::string prefix = "chunk Code: ";
  const auto fail = [&](const std::string& what) {
    return std::unexpected(BeamError{prefix + what});
  };
  ByteReader reader(data);
  CodeHeader header;
  auto header_size = reader.u32();
  if (!header_size) {
    return fail(std::to_string(data.size()) + " bytes, too short for the header size");
  }
  header.header_size = *header_size;
  if (header.header_size < k_min_code_header) {
    return fail("header size " + std::to_string(header.header_size) + " is below the minimum " +
                std::to_string(k_min_code_header));
  }
  auto header_bytes = reader.bytes(header.header_size);
  if (!header_bytes) {
    return fail("header of " + std::to_string(header.header_size) + " bytes does not fit in the " +
                std::to_string(reader.remaining()) + " bytes after its size field");
  }
  ByteReader fields(*header_bytes);
  header.instruction_set = *fields.u32();
  header.opcode_max = *fields.u32();
  header.label_count = *fields.u32();
  header.function_count = *fields.u32();
  if (header.instruction_set != 0) {
    return fail("instruction set " + std::to_string(header.instruction_set) + ", only 0 exists");
  }
  if (header.opcode_max == 0 || header.opcode_max > k_max_opcode) {
    return fail("highest opcode " + std::to_string(header.opcode_max) + " is outside 1.." +
                std::to_string(k_max_opcode));
  }
  if (reader.at_end()) {
    return fail("no instructions after the header");
  }
  // The loader stops at int_code_end; the compiler always ends the chunk
  // with it, so anything else means truncated or appended code.
  const auto last = static_cast<std::uint8_t>(data.back());
  if (last != k_int_code_end) {
    return fail("code ends with byte " + std::to_string(last) + ", expected int_code_end (" +
                std::to_string(k_int_code_end) + ")");
  }
  return header;
}

std::expected<std::vector<Import>, BeamError>
parse_import_table(std::string_view data, const std::vector<std::string>& atoms)
{
  const std::string prefix = "chunk ImpT: ";
  ByteReader reader(data);
  auto count = read_table_count(reader, prefix, "imports", 12);
  if (!count) {
    return std::unexpected(count.error());
  }
  std::vector<Import> imports;
  imports.reserve(*count);
  for (std::uint32_t i = 0; i < *count; ++i) {
    const std::uint32_t module = *reader.u32();
    const std::uint32_t function = *reader.u32();
    const std::uint32_t arity = *reader.u32();
    for (std::uint32_t index : {module, function}) {
      if (!atom_index_ok(index, atoms.size())) {
        return std::unexpected(BeamError{prefix + "import " + std::to_string(i) + " names atom " +
                                         std::to_string(index) + " but the atom table has " +
                                         atom_count_text(atoms.size())});
      }
    }
    if (arity > k_max_arity) {
      return std::unexpected(BeamError{
          prefix + "import " + std::to_string(i) + " (" + printable(atoms[module - 1]) + ":" +
          printable(atoms[function - 1]) + ") has arity " + std::to_string(arity) + ", above 255"});
    }
    imports.push_back(Import{atoms[module - 1], atoms[function - 1], arity});
  }
  return imports;
}

std::expected<std::vector<Export>, BeamError>
parse_export_table(std::string_view id, std::string_view data,
                   const std::vector<std::string>& atoms, std::uint32_t label_count)
{
  const std::string prefix = "chunk " + std::string(id) + ": ";
  const std::string noun = id == "LocT" ? "local" : "export";
  ByteReader reader(data);
  auto count = read_table_count(reader, prefix, noun + "s", 12);
  if (!count) {
    return std::unexpected(count.error());
  }
  std::vector<Export> exports;
  exports.reserve(*count);
  for (std::uint32_t i = 0; i < *count; ++i) {
    const std::uint32_t function = *reader.u32();
    const std::uint32_t arity = *reader.u32();
    const std::uint32_t label = *reader.u32();
    const std::string entry = noun + " " + std::to_string(i);
    if (!atom_index_ok(function, atoms.size())) {
      return std::unexpected(BeamError{prefix + entry + " names atom " + std::to_string(function) +
                                       " but the atom table has " + atom_count_text(atoms.size())});
    }
    const std::string name = printable(atoms[function - 1]) + "/" + std::to_string(arity);
    if (arity > k_max_arity) {
      return std::unexpected(BeamError{prefix + entry + " (" + name + ") has arity " +
                                       std::to_string(arity) + ", above 255"});
    }
    if (!label_ok(label, label_count)) {
      return std::unexpected(BeamError{prefix + entry + " (" + name + ") points at label " +
                                       std::to_string(label) + " but " +
                                       label_range_text(label_count)});
    }
    exports.push_back(Export{atoms[function - 1], arity, label});
  }
  return exports;
}

std::expected<void, BeamError> check_fun_table(std::string_view data, std::size_t atom_count,
                                               std::uint32_t label_count)
{
  const std::string prefix = "chunk FunT: ";
  ByteReader reader(data);
  // function atom, arity, label, index, free variable count, old unique
  auto count = read_table_count(reader, prefix, "funs", 24);
  if (!count) {
    return std::unexpected(count.error());
  }
  for (std::uint32_t i = 0; i < *count; ++i) {
    const std::uint32_t function = *reader.u32();
    const std::uint32_t arity = *reader.u32();
    const std::uint32_t label = *reader.u32();
    (void)reader.u32(); // index
    const std::uint32_t free_count = *reader.u32();
    (void)reader.u32(); // old unique, derived from the MD5
    const std::string entry = "fun " + std::to_string(i);
    if (!atom_index_ok(function, atom_count)) {
      return std::unexpected(BeamError{prefix + entry + " names atom " + std::to_string(function) +
                                       " but the atom table has " + atom_count_text(atom_count)});
    }
    // The arity counts the free variables, which arrive as extra arguments.
    if (arity > k_max_arity || free_count > arity) {
      return std::unexpected(BeamError{prefix + entry + " has arity " + std::to_string(arity) +
                                       " with " + std::to_string(free_count) +
                                       " free variables; need free <= arity <= 255"});
    }
    if (!label_ok(label, label_count)) {
      return std::unexpected(BeamError{prefix + entry + " points at label " +
                                       std::to_string(label) + " but " +
                                       label_range_text(label_count)});
    }
  }
  return {};
}

} // namespace sandbox::beam::detail
