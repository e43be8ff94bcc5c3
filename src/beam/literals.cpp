#include "beam/byte_reader.h"
#include "beam/chunks.h"

#include <zlib.h>

#include <algorithm>
#include <optional>
#include <string>

namespace sandbox::beam::detail {

namespace {

// First byte of every term_to_binary/1 result.
constexpr std::uint8_t k_external_term_version = 131;
// The output buffer starts small and doubles, so a file that declares a large
// size but holds little data costs little memory.
constexpr std::size_t k_initial_inflate_buffer = 64 * 1024;

class InflateStream {
public:
  InflateStream() = default;
  InflateStream(const InflateStream&) = delete;
  InflateStream& operator=(const InflateStream&) = delete;
  ~InflateStream()
  {
    if (m_initialized) {
      inflateEnd(&m_stream);
    }
  }

  bool init()
  {
    m_initialized = inflateInit(&m_stream) == Z_OK;
    return m_initialized;
  }
  z_stream& stream() noexcept { return m_stream; }

private:
  z_stream m_stream{};
  bool m_initialized = false;
};

std::string zlib_message(const z_stream& stream, int code)
{
  if (stream.msg != nullptr) {
    return stream.msg;
  }
  return "zlib error " + std::to_string(code);
}

// Inflates a zlib stream that must produce exactly `expected` bytes. Output
// is never allowed past expected + 1 bytes: one extra byte is enough to know
// the data inflates to more than declared.
std::expected<std::string, std::string> inflate_exact(std::string_view input, std::size_t expected)
{
  InflateStream inflater;
  if (!inflater.init()) {
    return std::unexpected("cannot initialise zlib");
  }
  z_stream& zs = inflater.stream();
  // The chunk size is a u32, so the input always fits in zlib's uInt.
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  zs.avail_in = static_cast<uInt>(input.size());

  const std::size_t cap = expected + 1;
  std::string out;
  std::size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      const std::size_t grown = std::min(cap, std::max(k_initial_inflate_buffer, out.size() * 2));
      out.resize(grown);
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, UINT32_MAX));
    const uInt out_before = zs.avail_out;
    const uInt in_before = zs.avail_in;
    const int code = inflate(&zs, Z_NO_FLUSH);
    produced += out_before - zs.avail_out;
    if (produced > expected) {
      return std::unexpected("inflates to more than the declared " + std::to_string(expected) +
                             " bytes");
    }
    if (code == Z_STREAM_END) {
      break;
    }
    if (code == Z_BUF_ERROR && zs.avail_in == 0) {
      return std::unexpected("zlib data ends early, after " + std::to_string(produced) + " of " +
                             std::to_string(expected) + " bytes");
    }
    // zlib reports no progress with room on both sides only on internal
    // errors; bail out rather than spin.
    if (code == Z_BUF_ERROR && zs.avail_in == in_before && zs.avail_out == out_before) {
      return std::unexpected("zlib made no progress after " + std::to_string(produced) + " bytes");
    }
    if (code == Z_NEED_DICT) {
      return std::unexpected("zlib data is corrupt: it asks for a preset dictionary");
    }
    if (code != Z_OK && code != Z_BUF_ERROR) {
      return std::unexpected("zlib data is corrupt: " + zlib_message(zs, code));
    }
  }
  if (produced != expected) {
    return std::unexpected("inflates to " + std::to_string(produced) + " bytes but declares " +
                           std::to_string(expected));
  }
  if (zs.avail_in != 0) {
    return std::unexpected(std::to_string(zs.avail_in) + " bytes after the end of the zlib data");
  }
  out.resize(produced);
  return out;
}

} // namespace

std::expected<std::uint64_t, BeamError> parse_literal_table(std::string_view data,
                                                            const Limits& limits)
{
  const std::string prefix = "chunk LitT: ";
  const auto fail = [&](const std::string& what) {
    return std::unexpected(BeamError{prefix + what});
  };
  ByteReader reader(data);
  auto declared = reader.u32();
  if (!declared) {
    return fail(std::to_string(data.size()) + " bytes, too short for the uncompressed size");
  }
  // Checked before anything is allocated or inflated.
  if (*declared > limits.max_literal_bytes) {
    return fail("declares " + std::to_string(*declared) +
                " uncompressed bytes, more than the limit of " +
                std::to_string(limits.max_literal_bytes));
  }
  // The compiler always compresses (even OTP 28 has no uncompressed form),
  // and the inflated table starts with a 4-byte count.
  if (*declared < 4) {
    return fail("declares " + std::to_string(*declared) +
                " uncompressed bytes, too few for the literal count");
  }
  auto inflated = inflate_exact(*reader.bytes(reader.remaining()), *declared);
  if (!inflated) {
    return fail(inflated.error());
  }

  ByteReader table(*inflated);
  const std::uint32_t count = *table.u32();
  // Each literal takes at least its 4-byte size.
  if (count > table.remaining() / 4) {
    return fail("declares " + std::to_string(count) + " literals but only " +
                std::to_string(table.remaining()) + " bytes follow");
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string entry = "literal " + std::to_string(i);
    auto size = table.u32();
    if (!size) {
      return fail("the size of " + entry + " is cut short");
    }
    auto term = table.bytes(*size);
    if (!term) {
      return fail(entry + " declares " + std::to_string(*size) + " bytes but only " +
                  std::to_string(table.remaining()) + " remain");
    }
    if (term->empty() || static_cast<std::uint8_t>(term->front()) != k_external_term_version) {
      return fail(entry + " does not start with the external term format version byte 131");
    }
  }
  if (!table.at_end()) {
    return fail(std::to_string(table.remaining()) + " bytes after the last literal");
  }
  return count;
}

} // namespace sandbox::beam::detail

namespace sandbox::beam {

namespace {

using detail::ByteReader;

// Tags of the external term format (erts/emulator/beam/external.h).
enum Tag : std::uint8_t {
  k_new_float = 70,
  k_bit_binary = 77,
  k_new_pid = 88,
  k_new_port = 89,
  k_newer_reference = 90,
  k_small_integer = 97,
  k_integer = 98,
  k_float = 99,
  k_atom = 100,
  k_reference = 101,
  k_port = 102,
  k_pid = 103,
  k_small_tuple = 104,
  k_large_tuple = 105,
  k_nil = 106,
  k_string = 107,
  k_list = 108,
  k_binary = 109,
  k_small_big = 110,
  k_large_big = 111,
  k_new_fun = 112,
  k_export = 113,
  k_new_reference = 114,
  k_small_atom = 115,
  k_map = 116,
  k_fun = 117,
  k_atom_utf8 = 118,
  k_small_atom_utf8 = 119,
  k_v4_port = 120,
};

std::optional<std::uint16_t> u16(ByteReader& reader)
{
  auto high = reader.u8();
  if (!high) return std::nullopt;
  auto low = reader.u8();
  if (!low) return std::nullopt;
  return static_cast<std::uint16_t>((*high << 8) | *low);
}

// Latin-1 (ATOM_EXT, SMALL_ATOM_EXT) as UTF-8, as the atom table holds names.
std::string latin1_to_utf8(std::string_view text)
{
  std::string out;
  for (char c : text) {
    auto byte = static_cast<std::uint8_t>(c);
    if (byte < 0x80) {
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(0xC0 | (byte >> 6)));
      out.push_back(static_cast<char>(0x80 | (byte & 0x3F)));
    }
  }
  return out;
}

// The terms of one literal, read without recursion: a stack of frames holds
// the elements still to read of each compound term around the current one.
class TermReader {
public:
  TermReader(std::string_view term, std::size_t index, Literals& out) : m_reader(term), m_index(index), m_out(out) {}

  std::optional<std::string> run()
  {
    auto version = m_reader.u8();
    if (!version || *version != 131) return "does not start with the version byte 131";
    // A frame per compound term being read (Frame, compound); the root
    // frame holds the literal itself.
    m_frames.push_back({1, kNoGroup, Shape::tuple, kNoGroup});
    m_pending = 1;
    while (!m_frames.empty()) {
      if (m_frames.back().remaining == 0) {
        m_frames.pop_back();
        continue;
      }
      --m_frames.back().remaining;
      --m_pending;
      if (!term()) return m_error.empty() ? "is cut short" : m_error;
      // Every term takes at least one byte.
      if (m_pending > m_reader.remaining()) return "declares more terms than it has bytes";
    }
    if (!m_reader.at_end()) return std::to_string(m_reader.remaining()) + " bytes after the term";
    return std::nullopt;
  }

  // The atoms read, in the order of the term (an external fun's are not among them).
  std::vector<std::string>& atoms() { return m_atoms; }
  // The atoms of each tuple, list and map (a keyword list's entries count
  // as the list's), for those with more than one.
  std::vector<std::vector<std::string>> groups()
  {
    std::vector<std::vector<std::string>> out;
    for (auto& group : m_groups) {
      if (group.size() > 1) out.push_back(std::move(group));
    }
    return out;
  }

private:
  static constexpr std::size_t kNoGroup = static_cast<std::size_t>(-1);

  enum class Shape : std::uint8_t { tuple, list, map, entry };

  struct Frame {
    std::uint64_t remaining = 0;
    std::size_t group = kNoGroup;
    Shape shape = Shape::tuple;
    std::size_t value_group = kNoGroup; // an entry's value joins its list's group
  };

  // A compound term with `elements` elements starts: a frame for them. A
  // 2-tuple in a list is a keyword entry ({fun, cmd}): its value joins the
  // list's group, as the source scan reads [mod: :os, fun: :cmd]; a map's
  // keys and an entry's key join no group, as keyword keys are no atoms there.
  std::optional<std::uint64_t> compound(std::uint64_t elements, Shape shape)
  {
    const auto& parent = m_frames.back();
    std::size_t value_group = kNoGroup;
    if (shape == Shape::tuple && elements == 2 && parent.shape == Shape::list) {
      shape = Shape::entry;
      value_group = parent.group;
    }
    m_frames.push_back({elements, m_groups.size(), shape, value_group});
    m_groups.emplace_back();
    m_pending += elements;
    return 0;
  }

  // The group an atom read as the current element joins, if any.
  [[nodiscard]] std::size_t group_of_element() const
  {
    const auto& frame = m_frames.back();
    // `remaining` already counts this element out.
    switch (frame.shape) {
    case Shape::entry: return frame.remaining == 0 ? frame.value_group : kNoGroup;
    case Shape::map: return frame.remaining % 2 == 1 ? kNoGroup : frame.group;
    default: return frame.group;
    }
  }

  // Reads one term's own bytes; its elements are read as the frames say.
  std::optional<std::uint64_t> term()
  {
    auto tag = m_reader.u8();
    if (!tag) return std::nullopt;
    switch (*tag) {
    case k_small_integer: return skip(1);
    case k_integer: return skip(4);
    case k_float: return skip(31);
    case k_new_float: return skip(8);
    case k_atom:
    case k_small_atom:
    case k_atom_utf8:
    case k_small_atom_utf8: {
      auto name = atom_body(*tag);
      if (!name) return std::nullopt;
      if (auto group = group_of_element(); group != kNoGroup) m_groups[group].push_back(*name);
      m_atoms.push_back(std::move(*name));
      return 0;
    }
    case k_small_tuple: {
      auto arity = m_reader.u8();
      if (!arity) return std::nullopt;
      return compound(*arity, Shape::tuple);
    }
    case k_large_tuple: {
      auto arity = m_reader.u32();
      if (!arity) return std::nullopt;
      return compound(*arity, Shape::tuple);
    }
    case k_nil: return 0;
    case k_string: {
      auto length = u16(m_reader);
      if (!length) return std::nullopt;
      return skip(*length);
    }
    case k_list: {
      auto length = m_reader.u32();
      if (!length) return std::nullopt;
      return compound(std::uint64_t{*length} + 1, Shape::list); // the elements and the tail
    }
    case k_binary: return skip_counted(m_reader.u32(), 0);
    case k_bit_binary: return skip_counted(m_reader.u32(), 1); // the bits of the last byte
    case k_small_big: return skip_counted(m_reader.u8(), 1);   // the sign byte
    case k_large_big: return skip_counted(m_reader.u32(), 1);
    case k_map: {
      auto arity = m_reader.u32();
      if (!arity) return std::nullopt;
      return compound(std::uint64_t{*arity} * 2, Shape::map);
    }
    case k_export: {
      // fun M:F/A: a reference to M:F/A, judged as an import would be.
      auto module = atom();
      auto function = module ? atom() : std::nullopt;
      auto arity_tag = function ? m_reader.u8() : std::nullopt;
      auto arity = arity_tag && *arity_tag == k_small_integer ? m_reader.u8() : std::nullopt;
      if (!arity) return fail("a fun M:F/A whose parts are not two atoms and a small integer");
      m_out.funs.push_back({m_index, Import{std::move(*module), std::move(*function), *arity}});
      return 0;
    }
    case k_new_fun: {
      // Size, arity, uniq, index, the number of free variables; the module,
      // old index, old uniq and pid; then the free variables.
      if (!skip(4 + 1 + 16 + 4)) return std::nullopt;
      auto free = m_reader.u32();
      if (!free || !atom() || !integer() || !integer() || !pid()) return std::nullopt;
      return compound(*free, Shape::tuple);
    }
    case k_fun: {
      auto free = m_reader.u32();
      if (!free || !pid() || !atom() || !integer() || !integer()) return std::nullopt;
      return compound(*free, Shape::tuple);
    }
    case k_pid:
    case k_new_pid:
    case k_port:
    case k_new_port:
    case k_v4_port:
    case k_reference:
      return identifier(*tag);
    case k_new_reference:
    case k_newer_reference: {
      auto words = u16(m_reader);
      if (!words || !atom()) return std::nullopt;
      return skip((*tag == k_new_reference ? 1u : 4u) + 4ull * *words);
    }
    default:
      return fail("tag " + std::to_string(*tag) + ", which the compiler does not write in a literal");
    }
  }

  std::optional<std::uint64_t> skip(std::uint64_t count)
  {
    if (count > m_reader.remaining() || !m_reader.bytes(count)) return std::nullopt;
    return 0;
  }

  // A length the term just read, then that many bytes and `extra` more.
  template <typename Length>
  std::optional<std::uint64_t> skip_counted(std::optional<Length> length, std::uint64_t extra)
  {
    if (!length) return std::nullopt;
    return skip(std::uint64_t{*length} + extra);
  }

  std::optional<std::uint64_t> fail(std::string reason)
  {
    m_error = std::move(reason);
    return std::nullopt;
  }

  std::optional<std::string> atom_body(std::uint8_t tag)
  {
    std::optional<std::uint16_t> length;
    if (tag == k_small_atom || tag == k_small_atom_utf8) {
      auto small = m_reader.u8();
      if (small) length = *small;
    } else {
      length = u16(m_reader);
    }
    if (!length) return std::nullopt;
    auto text = m_reader.bytes(*length);
    if (!text) return std::nullopt;
    return tag == k_atom || tag == k_small_atom ? latin1_to_utf8(*text) : std::string(*text);
  }

  // A term that must be an atom (a fun's module, a pid's node).
  std::optional<std::string> atom()
  {
    auto tag = m_reader.u8();
    if (!tag || (*tag != k_atom && *tag != k_small_atom && *tag != k_atom_utf8 && *tag != k_small_atom_utf8)) {
      fail("an atom expected inside a fun, pid, port or reference");
      return std::nullopt;
    }
    return atom_body(*tag);
  }

  // A term that must be an integer (a fun's old index and uniq).
  bool integer()
  {
    auto tag = m_reader.u8();
    if (tag && *tag == k_small_integer) return static_cast<bool>(skip(1));
    if (tag && *tag == k_integer) return static_cast<bool>(skip(4));
    fail("an integer expected inside a fun");
    return false;
  }

  // A pid, port or old reference after its tag: the node, then fixed words.
  std::optional<std::uint64_t> identifier(std::uint8_t tag)
  {
    if (!atom()) return std::nullopt;
    switch (tag) {
    case k_pid: return skip(4 + 4 + 1);
    case k_new_pid: return skip(4 + 4 + 4);
    case k_port: return skip(4 + 1);
    case k_new_port: return skip(4 + 4);
    case k_v4_port: return skip(8 + 4);
    default: return skip(4 + 1); // k_reference
    }
  }

  bool pid()
  {
    auto tag = m_reader.u8();
    if (!tag || (*tag != k_pid && *tag != k_new_pid)) {
      fail("a pid expected inside a fun");
      return false;
    }
    return static_cast<bool>(identifier(*tag));
  }

  ByteReader m_reader;
  std::size_t m_index;
  Literals& m_out;
  std::string m_error;
  std::vector<std::string> m_atoms;
  std::vector<Frame> m_frames;
  std::uint64_t m_pending = 0; // the elements of every frame still to read
  std::vector<std::vector<std::string>> m_groups;
};

} // namespace

std::expected<Literals, BeamError> read_literals(std::string_view bytes, const BeamInfo& info, const Limits& limits)
{
  Literals out;
  const Chunk* chunk = nullptr;
  for (const auto& candidate : info.chunks) {
    if (candidate.id == "LitT") chunk = &candidate;
  }
  if (chunk == nullptr) return out;
  if (chunk->offset > bytes.size() || chunk->size > bytes.size() - chunk->offset) {
    return std::unexpected(BeamError{"chunk LitT: not found in the file"});
  }
  ByteReader reader(bytes.substr(chunk->offset, chunk->size));
  auto declared = reader.u32();
  if (!declared || *declared < 4 || *declared > limits.max_literal_bytes) {
    return std::unexpected(BeamError{"chunk LitT: bad uncompressed size"});
  }
  auto inflated = detail::inflate_exact(*reader.bytes(reader.remaining()), *declared);
  if (!inflated) return std::unexpected(BeamError{"chunk LitT: " + inflated.error()});
  ByteReader table(*inflated);
  const std::uint32_t count = *table.u32();
  if (count > table.remaining() / 4) return std::unexpected(BeamError{"chunk LitT: too many literals"});
  out.atoms.resize(count);
  std::uint64_t atoms = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    auto size = table.u32();
    auto term = size ? table.bytes(*size) : std::nullopt;
    if (!term) return std::unexpected(BeamError{"chunk LitT: literal " + std::to_string(i) + " is cut short"});
    TermReader terms(*term, i, out);
    if (auto error = terms.run()) {
      return std::unexpected(BeamError{"chunk LitT: literal " + std::to_string(i) + " " + *error});
    }
    for (auto& group : terms.groups()) out.groups.push_back(std::move(group));
    auto& names = terms.atoms();
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    atoms += names.size();
    if (atoms > limits.max_atoms) {
      return std::unexpected(BeamError{"chunk LitT: more atoms than the limit of " + std::to_string(limits.max_atoms)});
    }
    out.atoms[i] = std::move(names);
  }
  return out;
}

} // namespace sandbox::beam
