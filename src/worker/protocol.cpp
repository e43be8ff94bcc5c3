#include "worker/protocol.h"

#include <ei.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

namespace sandbox::worker {

namespace {

void ensure_ei()
{
  static std::once_flag once;
  std::call_once(once, [] { ei_init(); });
}

// --- encoding ----------------------------------------------------------------

class Encoder {
public:
  Encoder()
  {
    ensure_ei();
    ei_x_new_with_version(&m_buffer);
  }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  ~Encoder() { ei_x_free(&m_buffer); }

  Encoder& tuple(int arity) { check(ei_x_encode_tuple_header(&m_buffer, arity)); return *this; }
  Encoder& list(int arity)
  {
    if (arity > 0) {
      check(ei_x_encode_list_header(&m_buffer, arity));
    }
    return *this;
  }
  Encoder& nil() { check(ei_x_encode_empty_list(&m_buffer)); return *this; }
  Encoder& atom(const char* name) { check(ei_x_encode_atom(&m_buffer, name)); return *this; }
  Encoder& boolean(bool value) { check(ei_x_encode_boolean(&m_buffer, value ? 1 : 0)); return *this; }
  Encoder& integer(long value) { check(ei_x_encode_long(&m_buffer, value)); return *this; }
  Encoder& binary(std::string_view bytes)
  {
    check(ei_x_encode_binary(&m_buffer, bytes.data(), static_cast<int>(bytes.size())));
    return *this;
  }
  [[nodiscard]] std::string bytes() const
  {
    return {m_buffer.buff, static_cast<std::size_t>(m_buffer.index)};
  }

private:
  void check(int rc)
  {
    if (rc != 0) {
      throw std::bad_alloc(); // ei_x_* only fails when it cannot grow the buffer
    }
  }
  ei_x_buff m_buffer{};
};

// --- decoding ----------------------------------------------------------------

// ei's decoders read from a bare pointer: the payload is copied into a buffer
// with zeroed slack (so fixed-size headers never read past it), and every
// variable-length item is checked against the real length first.
class Decoder {
public:
  explicit Decoder(std::string_view payload) : m_size(static_cast<int>(payload.size()))
  {
    ensure_ei();
    m_buffer.assign(payload.size() + kSlack, '\0');
    std::memcpy(m_buffer.data(), payload.data(), payload.size());
  }

  bool version()
  {
    int version = 0;
    return ei_decode_version(m_buffer.data(), &m_index, &version) == 0 && in_bounds();
  }
  std::optional<int> tuple()
  {
    int arity = 0;
    if (ei_decode_tuple_header(m_buffer.data(), &m_index, &arity) != 0 || !in_bounds()) {
      return std::nullopt;
    }
    return arity;
  }
  // Elements follow; a non-empty list ends with tail().
  std::optional<int> list()
  {
    int type = 0, size = 0;
    if (!peek(&type, &size) || (type != ERL_LIST_EXT && type != ERL_NIL_EXT)) {
      return std::nullopt;
    }
    int arity = 0;
    if (ei_decode_list_header(m_buffer.data(), &m_index, &arity) != 0 || !in_bounds() ||
        arity < 0 || arity > m_size) {
      return std::nullopt;
    }
    return arity;
  }
  bool tail()
  {
    int arity = -1;
    return ei_decode_list_header(m_buffer.data(), &m_index, &arity) == 0 && arity == 0 &&
           in_bounds();
  }
  std::optional<std::string> atom()
  {
    int type = 0, size = 0;
    if (!peek(&type, &size) || size < 0 || size > 255 * 4 || !fits(size)) {
      return std::nullopt;
    }
    char name[MAXATOMLEN_UTF8];
    if (ei_decode_atom(m_buffer.data(), &m_index, name) != 0 || !in_bounds()) {
      return std::nullopt;
    }
    return std::string(name);
  }
  std::optional<std::string> binary()
  {
    int type = 0, size = 0;
    if (!peek(&type, &size) || type != ERL_BINARY_EXT || size < 0 || !fits(size)) {
      return std::nullopt;
    }
    std::string out(static_cast<std::size_t>(size), '\0');
    long length = 0;
    if (ei_decode_binary(m_buffer.data(), &m_index, out.data(), &length) != 0 || !in_bounds() ||
        length != size) {
      return std::nullopt;
    }
    return out;
  }
  std::optional<long> integer()
  {
    int type = 0, size = 0;
    if (!peek(&type, &size) || (type != ERL_SMALL_INTEGER_EXT && type != ERL_INTEGER_EXT)) {
      return std::nullopt;
    }
    long value = 0;
    if (ei_decode_long(m_buffer.data(), &m_index, &value) != 0 || !in_bounds()) {
      return std::nullopt;
    }
    return value;
  }
  [[nodiscard]] bool at_end() const { return m_index == m_size; }

private:
  static constexpr std::size_t kSlack = 16;

  bool peek(int* type, int* size)
  {
    if (m_index >= m_size) {
      return false;
    }
    return ei_get_type(m_buffer.data(), &m_index, type, size) == 0;
  }
  [[nodiscard]] bool fits(int payload) const
  {
    return static_cast<long long>(m_index) + payload <= m_size;
  }
  [[nodiscard]] bool in_bounds() const { return m_index >= 0 && m_index <= m_size; }

  std::string m_buffer;
  int m_size;
  int m_index = 0;
};

template <typename T, typename F>
std::optional<std::vector<T>> decode_list(Decoder& in, F&& element)
{
  auto arity = in.list();
  if (!arity) {
    return std::nullopt;
  }
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(*arity));
  for (int i = 0; i < *arity; ++i) {
    auto item = element(in);
    if (!item) {
      return std::nullopt;
    }
    out.push_back(std::move(*item));
  }
  if (*arity > 0 && !in.tail()) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::vector<std::string>> decode_strings(Decoder& in)
{
  return decode_list<std::string>(in, [](Decoder& d) { return d.binary(); });
}

std::optional<core::Diagnostic> decode_diagnostic(Decoder& in)
{
  if (in.tuple() != 5) {
    return std::nullopt;
  }
  core::Diagnostic diagnostic;
  auto file = in.binary();
  auto line = in.integer();
  auto column = in.integer();
  auto severity = in.atom();
  auto message = in.binary();
  if (!file || !line || !column || !severity || !message) {
    return std::nullopt;
  }
  diagnostic.file = std::move(*file);
  diagnostic.line = static_cast<int>(std::clamp<long>(*line, 0, 1 << 30));
  diagnostic.column = static_cast<int>(std::clamp<long>(*column, 0, 1 << 30));
  diagnostic.severity = *severity == "error" ? core::Severity::error : core::Severity::warning;
  diagnostic.message = std::move(*message);
  return diagnostic;
}

std::optional<std::vector<core::Diagnostic>> decode_diagnostics(Decoder& in)
{
  return decode_list<core::Diagnostic>(in, decode_diagnostic);
}

std::optional<core::FileReferences> decode_references(Decoder& in)
{
  if (in.tuple() != 6) {
    return std::nullopt;
  }
  core::FileReferences refs;
  auto file = in.binary();
  if (!file) {
    return std::nullopt;
  }
  refs.file = std::move(*file);
  for (auto* slot : {&refs.modules, &refs.compile_refs, &refs.export_refs, &refs.runtime_refs,
                     &refs.external_resources}) {
    auto names = decode_strings(in);
    if (!names) {
      return std::nullopt;
    }
    *slot = std::move(*names);
  }
  return refs;
}

std::optional<CompiledModule> decode_module(Decoder& in)
{
  if (in.tuple() != 2) {
    return std::nullopt;
  }
  auto name = in.binary();
  auto path = in.binary();
  if (!name || !path) {
    return std::nullopt;
  }
  return CompiledModule{std::move(*name), std::move(*path)};
}

} // namespace

std::string encode_hello()
{
  Encoder out;
  out.tuple(2).atom("hello").integer(kProtocolVersion);
  return out.bytes();
}

std::string encode_compile(const CompileRequest& request)
{
  Encoder out;
  out.tuple(5).atom("compile_files").binary(request.source_dir).binary(request.out_dir);
  out.list(static_cast<int>(request.files.size()));
  for (const auto& file : request.files) {
    out.binary(file);
  }
  out.nil();
  out.list(request.code_paths.empty() ? 2 : 3);
  out.tuple(2).atom("debug_info").boolean(request.debug_info);
  out.tuple(2).atom("parallel").boolean(request.parallel);
  if (!request.code_paths.empty()) {
    out.tuple(2).atom("code_path").list(static_cast<int>(request.code_paths.size()));
    for (const auto& dir : request.code_paths) {
      out.binary(dir);
    }
    out.nil();
  }
  out.nil();
  return out.bytes();
}

std::string encode_loaded_modules()
{
  Encoder out;
  out.tuple(1).atom("loaded_modules");
  return out.bytes();
}

std::string encode_check(long atom_budget, long memory_budget)
{
  Encoder out;
  out.tuple(3).atom("check").integer(atom_budget).integer(memory_budget);
  return out.bytes();
}

std::expected<std::vector<std::string>, std::string> decode_loaded_modules(std::string_view payload)
{
  Decoder in(payload);
  if (!in.version() || in.tuple() != 2 || in.atom() != "modules") {
    return std::unexpected("not a loaded_modules reply");
  }
  auto names = decode_strings(in);
  if (!names || !in.at_end()) {
    return std::unexpected("malformed loaded_modules reply");
  }
  return std::move(*names);
}

std::expected<CheckReply, std::string> decode_check_reply(std::string_view payload)
{
  Decoder probe(payload);
  if (probe.version() && probe.atom() == "ok" && probe.at_end()) {
    return CheckReply{true, {}};
  }
  Decoder in(payload);
  if (!in.version() || in.tuple() != 2 || in.atom() != "dirty") {
    return std::unexpected("not a check reply");
  }
  auto what = in.binary();
  if (!what || !in.at_end()) {
    return std::unexpected("malformed check reply");
  }
  return CheckReply{false, std::move(*what)};
}

std::expected<Hello, std::string> decode_hello(std::string_view payload)
{
  Decoder in(payload);
  Hello hello;
  if (!in.version() || in.tuple() != 4 || in.atom() != "hello") {
    return std::unexpected("not a hello reply");
  }
  auto version = in.integer();
  auto otp = in.binary();
  auto elixir = in.binary();
  if (!version || !otp || !elixir || !in.at_end()) {
    return std::unexpected("malformed hello reply");
  }
  return Hello{*version, std::move(*otp), std::move(*elixir)};
}

std::expected<CompileReply, std::string> decode_compile_reply(std::string_view payload)
{
  Decoder in(payload);
  if (!in.version()) {
    return std::unexpected("not an external term");
  }
  auto arity = in.tuple();
  auto tag = arity ? in.atom() : std::nullopt;
  if (!arity || !tag) {
    return std::unexpected("the reply is not a tagged tuple");
  }
  CompileReply reply;
  if (*tag == "failed" && *arity == 2) {
    auto message = in.binary();
    if (!message || !in.at_end()) {
      return std::unexpected("malformed failure reply");
    }
    reply.status = CompileReply::Status::failed;
    reply.failure = std::move(*message);
    return reply;
  }
  if (*tag == "ok" && *arity == 4) {
    auto modules = decode_list<CompiledModule>(in, decode_module);
    auto warnings = modules ? decode_diagnostics(in) : std::nullopt;
    auto refs = warnings ? decode_list<core::FileReferences>(in, decode_references) : std::nullopt;
    if (!refs || !in.at_end()) {
      return std::unexpected("malformed ok reply");
    }
    reply.status = CompileReply::Status::ok;
    reply.modules = std::move(*modules);
    reply.warnings = std::move(*warnings);
    reply.references = std::move(*refs);
    return reply;
  }
  if (*tag == "error" && *arity == 4) {
    auto errors = decode_diagnostics(in);
    auto warnings = errors ? decode_diagnostics(in) : std::nullopt;
    auto refs = warnings ? decode_list<core::FileReferences>(in, decode_references) : std::nullopt;
    if (!refs || !in.at_end()) {
      return std::unexpected("malformed error reply");
    }
    reply.status = CompileReply::Status::error;
    reply.errors = std::move(*errors);
    reply.warnings = std::move(*warnings);
    reply.references = std::move(*refs);
    return reply;
  }
  return std::unexpected("unknown reply " + *tag + "/" + std::to_string(*arity));
}

// --- frames ------------------------------------------------------------------

std::string_view to_string(FrameError error)
{
  switch (error) {
  case FrameError::closed: return "closed";
  case FrameError::truncated: return "truncated";
  case FrameError::too_large: return "too_large";
  case FrameError::timeout: return "timeout";
  case FrameError::io: return "io";
  }
  return "io";
}

namespace {

// Waits until `fd` is ready for `events` or the deadline passes.
std::expected<void, FrameFailure> wait_ready(int fd, short events, Deadline deadline)
{
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
    if (left < 0) {
      return std::unexpected(FrameFailure{FrameError::timeout, "deadline passed"});
    }
    pollfd p{fd, events, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready > 0) {
      return {};
    }
    if (ready < 0 && errno != EINTR) {
      return std::unexpected(FrameFailure{FrameError::io, std::strerror(errno)});
    }
  }
}

// Reads exactly `size` bytes; `got_any` tells EOF at the start from EOF inside.
std::expected<void, FrameFailure> read_exact(int fd, char* data, std::size_t size, Deadline deadline,
                                             bool inside_frame)
{
  std::size_t done = 0;
  while (done < size) {
    if (auto ready = wait_ready(fd, POLLIN, deadline); !ready) {
      return ready;
    }
    ssize_t n = ::read(fd, data + done, size - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n == 0) {
      bool started = inside_frame || done > 0;
      return std::unexpected(FrameFailure{started ? FrameError::truncated : FrameError::closed,
                                          started ? "end of file inside a frame" : "end of file"});
    } else if (errno != EINTR && errno != EAGAIN) {
      return std::unexpected(FrameFailure{FrameError::io, std::strerror(errno)});
    }
  }
  return {};
}

} // namespace

std::string make_frame(std::string_view payload)
{
  auto size = static_cast<std::uint32_t>(payload.size());
  std::string out;
  out.reserve(payload.size() + 4);
  out.push_back(static_cast<char>((size >> 24) & 0xff));
  out.push_back(static_cast<char>((size >> 16) & 0xff));
  out.push_back(static_cast<char>((size >> 8) & 0xff));
  out.push_back(static_cast<char>(size & 0xff));
  out.append(payload);
  return out;
}

std::expected<void, FrameFailure> write_frame(int fd, std::string_view payload, Deadline deadline)
{
  if (payload.size() > kMaxFrameBytes) {
    return std::unexpected(FrameFailure{FrameError::too_large, "request too large"});
  }
  auto bytes = make_frame(payload);
  std::size_t done = 0;
  while (done < bytes.size()) {
    if (auto ready = wait_ready(fd, POLLOUT, deadline); !ready) {
      return ready;
    }
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return std::unexpected(FrameFailure{
        errno == EPIPE ? FrameError::closed : FrameError::io, std::strerror(errno)});
    }
  }
  return {};
}

std::expected<std::string, FrameFailure> read_frame(int fd, Deadline deadline,
                                                    std::size_t max_bytes)
{
  unsigned char header[4];
  if (auto got = read_exact(fd, reinterpret_cast<char*>(header), 4, deadline, false); !got) {
    return std::unexpected(got.error());
  }
  std::size_t size = (std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                     (std::size_t{header[2]} << 8) | std::size_t{header[3]};
  if (size > max_bytes) {
    return std::unexpected(FrameFailure{
      FrameError::too_large,
      "a frame of " + std::to_string(size) + " bytes (at most " + std::to_string(max_bytes) + ")"});
  }
  std::string payload(size, '\0');
  if (auto got = read_exact(fd, payload.data(), size, deadline, true); !got) {
    return std::unexpected(got.error());
  }
  return payload;
}

} // namespace sandbox::worker
