#pragma once
// Per-chunk parsers behind parse_beam. Each takes the chunk's data (without
// header or padding) and returns what it found or the first problem, worded
// "chunk <Id>: ...".

#include "beam/beam.h"

#include <cstddef>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::beam::detail {

// Text from the file made fit for a message: printable ASCII as is, any
// other byte as \xNN, so a hostile chunk id or atom cannot inject control
// characters or invalid UTF-8 into logs and JSON.
std::string printable(std::string_view text);

// Splits the IFF container into chunks, checking the FOR1 header, the
// declared length, every chunk size and padding, and duplicate ids.
std::expected<std::vector<Chunk>, BeamError> split_chunks(std::string_view bytes,
                                                          const Limits& limits);

// `utf8` is true for AtU8 (atoms must be valid UTF-8), false for the legacy
// Latin-1 Atom chunk.
std::expected<std::vector<std::string>, BeamError>
parse_atom_table(std::string_view id, std::string_view data, bool utf8, const Limits& limits);

struct CodeHeader {
  std::uint32_t header_size = 0;
  std::uint32_t instruction_set = 0;
  std::uint32_t opcode_max = 0;
  std::uint32_t label_count = 0;
  std::uint32_t function_count = 0;
};

std::expected<CodeHeader, BeamError> parse_code_chunk(std::string_view data);

std::expected<std::vector<Import>, BeamError>
parse_import_table(std::string_view data, const std::vector<std::string>& atoms);

// ExpT and LocT share a layout; `id` names the chunk in messages. Labels
// must lie inside the code's label range.
std::expected<std::vector<Export>, BeamError>
parse_export_table(std::string_view id, std::string_view data,
                   const std::vector<std::string>& atoms, std::uint32_t label_count);

// FunT is not reported, but a lambda naming a missing atom or label would
// make the loader reject the module, so it is checked here too.
std::expected<void, BeamError> check_fun_table(std::string_view data, std::size_t atom_count,
                                               std::uint32_t label_count);

// Returns the number of literals.
std::expected<std::uint64_t, BeamError> parse_literal_table(std::string_view data,
                                                            const Limits& limits);

} // namespace sandbox::beam::detail
