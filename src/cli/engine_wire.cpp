#include "cli/engine_wire.h"

#include "compiler/engine_state.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sandbox::cli::engine {

namespace {

void put_u32(std::string& out, std::uint32_t value)
{
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

std::uint32_t get_u32(const char* bytes)
{
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return value;
}

void put_string(std::string& out, std::string_view text)
{
  put_u32(out, static_cast<std::uint32_t>(text.size()));
  out.append(text);
}

// Reads length-prefixed strings off the front of a payload.
struct Reader {
  std::string_view rest;
  bool ok = true;

  std::string string()
  {
    if (!ok || rest.size() < 4) {
      ok = false;
      return {};
    }
    auto size = get_u32(rest.data());
    rest.remove_prefix(4);
    if (size > rest.size()) {
      ok = false;
      return {};
    }
    std::string value(rest.substr(0, size));
    rest.remove_prefix(size);
    return value;
  }

  std::uint32_t number()
  {
    auto text = string();
    char* end = nullptr;
    auto value = std::strtoul(text.c_str(), &end, 10);
    ok = ok && !text.empty() && end != nullptr && *end == '\0';
    return static_cast<std::uint32_t>(value);
  }

  std::vector<std::string> list()
  {
    auto count = number();
    std::vector<std::string> items;
    for (std::uint32_t i = 0; ok && i < count; ++i) {
      items.push_back(string());
    }
    return items;
  }
};

bool read_exact(int fd, char* buffer, std::size_t size)
{
  while (size > 0) {
    auto n = ::read(fd, buffer, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    buffer += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// 64-bit FNV-1a: names the socket of an environment; the engine compares the
// environment itself.
std::uint64_t fnv1a(const std::vector<std::string>& items)
{
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const auto& item : items) {
    for (char c : item) {
      hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
    hash = hash * 0x100000001b3ULL; // the separator
  }
  return hash;
}

std::expected<void, std::string> private_dir(const std::string& dir)
{
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return std::unexpected(dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return std::unexpected(dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    return std::unexpected(dir + " is not a private directory of this user (mode 0700)");
  }
  return {};
}

// Creates the missing directories of `dir` (0700 each).
void make_parents(const std::string& dir)
{
  for (auto slash = dir.find('/', 1); slash != std::string::npos;
       slash = dir.find('/', slash + 1)) {
    ::mkdir(dir.substr(0, slash).c_str(), 0700);
  }
}

} // namespace

std::string encode(const Request& request)
{
  std::string out;
  put_string(out, request.kind);
  put_string(out, request.identity);
  put_string(out, request.cwd);
  put_string(out, std::to_string(request.umask));
  put_string(out, request.out_terminal ? "1" : "0");
  put_string(out, std::to_string(request.argv.size()));
  for (const auto& arg : request.argv) {
    put_string(out, arg);
  }
  put_string(out, std::to_string(request.environment.size()));
  for (const auto& item : request.environment) {
    put_string(out, item);
  }
  put_string(out, request.input ? "1" : "0");
  if (request.input) {
    put_string(out, *request.input);
  }
  return out;
}

std::optional<Request> decode(std::string_view payload)
{
  Reader reader{payload};
  Request request;
  request.kind = reader.string();
  request.identity = reader.string();
  request.cwd = reader.string();
  request.umask = reader.number() & 0777;
  request.out_terminal = reader.string() == "1";
  request.argv = reader.list();
  request.environment = reader.list();
  if (reader.string() == "1") {
    request.input = reader.string();
  }
  if (!reader.ok || !reader.rest.empty()) {
    return std::nullopt;
  }
  return request;
}

bool write_all(int fd, std::string_view bytes)
{
  while (!bytes.empty()) {
    auto n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

namespace {

// send() without SIGPIPE: a peer that went away is an error to handle, not
// the end of this process.
bool send_all(int fd, std::string_view bytes)
{
  while (!bytes.empty()) {
    auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

} // namespace

bool send_frame(int fd, char type, std::string_view payload)
{
  std::string head(1, type);
  put_u32(head, static_cast<std::uint32_t>(payload.size()));
  if (payload.size() < 4096) {
    head.append(payload);
    return send_all(fd, head);
  }
  return send_all(fd, head) && send_all(fd, payload);
}

bool read_frame(int fd, char& type, std::string& payload, std::uint32_t max_bytes)
{
  char head[5];
  if (!read_exact(fd, head, sizeof head)) {
    return false;
  }
  type = head[0];
  auto size = get_u32(head + 1);
  if (size > max_bytes) {
    return false;
  }
  payload.resize(size);
  return read_exact(fd, payload.data(), size);
}

std::string identity()
{
  struct stat st {};
  if (::stat("/proc/self/exe", &st) != 0) {
    return std::string(SANDBOX_VERSION) + " (binary unknown)";
  }
  char text[160];
  std::snprintf(text, sizeof text, "%s %llx:%llx:%lld:%lld.%09ld", SANDBOX_VERSION,
                static_cast<unsigned long long>(st.st_dev),
                static_cast<unsigned long long>(st.st_ino), static_cast<long long>(st.st_size),
                static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
  return text;
}

std::vector<std::string> environment_contract(char** environ_list)
{
  static constexpr std::string_view kNamed[] = {"PATH=", "HOME=", "TMPDIR=", "XDG_STATE_HOME=",
                                                "XDG_CONFIG_HOME="};
  std::vector<std::string> items;
  for (char** e = environ_list; e != nullptr && *e != nullptr; ++e) {
    std::string_view item(*e);
    auto name = item.substr(0, item.find('=') + 1);
    bool wanted = item.starts_with("SANDBOX_") && name != std::string(kNoDaemonVariable) + "=" &&
                  name != std::string(kIdleExitVariable) + "=";
    wanted = wanted || std::find(std::begin(kNamed), std::end(kNamed), name) != std::end(kNamed);
    if (wanted && name.size() > 1) {
      items.emplace_back(item);
    }
  }
  std::sort(items.begin(), items.end());
  return items;
}

std::expected<Location, std::string> locate(const std::vector<std::string>& contract)
{
  Location where;
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  struct stat st {};
  if (runtime != nullptr && runtime[0] == '/' && ::stat(runtime, &st) == 0 && S_ISDIR(st.st_mode)) {
    where.dir = std::string(runtime) + "/sandbox";
  } else {
    where.dir = (compiler::state_dir() / "run").string();
    make_parents(where.dir);
  }
  if (auto made = private_dir(where.dir); !made) {
    return std::unexpected(made.error());
  }
  char name[40];
  std::snprintf(name, sizeof name, "/engine-%016llx",
                static_cast<unsigned long long>(fnv1a(contract)));
  where.socket = where.dir + name + ".sock";
  where.lock = where.dir + name + ".lock";
  where.log = where.dir + name + ".log";
  if (where.socket.size() >= sizeof(sockaddr_un::sun_path)) {
    return std::unexpected("the socket path is too long: " + where.socket);
  }
  return where;
}

} // namespace sandbox::cli::engine
