#include "deps/http_fetch.h"
#include "support/http_server.h"
#include "util/fs.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <optional>
#include <thread>

namespace sandbox::deps {

namespace {

using namespace std::chrono_literals;
using sandbox::testing::ClosedPort;
using sandbox::testing::HttpServer;

class HttpFetchTest : public ::testing::Test {
protected:
  // libcurl honours the environment's proxy settings; the local server must
  // be reached directly even where a proxy is configured.
  static void SetUpTestSuite()
  {
    const char* existing = std::getenv("no_proxy");
    std::string value = "127.0.0.1,localhost";
    if (existing != nullptr && *existing != '\0') {
      value += ",";
      value += existing;
    }
    ::setenv("no_proxy", value.c_str(), 1);
  }

  void SetUp() override
  {
    auto dir = util::TempDir::create(util::default_temp_root(), "http-fetch-test-");
    ASSERT_TRUE(dir) << dir.error();
    m_dir.emplace(std::move(*dir));
    fs::create_directories(served() / "tarballs");
    fs::create_directories(out());
    m_server.emplace(served());
  }

  void TearDown() override { m_server.reset(); }

  [[nodiscard]] fs::path served() const { return m_dir->path() / "served"; }
  [[nodiscard]] fs::path out() const { return m_dir->path() / "out"; }
  [[nodiscard]] fs::path dest() const { return out() / "pkg-1.0.0.tar"; }
  HttpServer& server() { return *m_server; }

  std::string serve_file(const std::string& name, const std::string& bytes)
  {
    std::ofstream(served() / "tarballs" / name, std::ios::binary) << bytes;
    return "/tarballs/" + name;
  }

  // The destination directory holds nothing: no file, no temporary.
  [[nodiscard]] bool out_is_empty() const { return fs::is_empty(out()); }

  static std::string read(const fs::path& path)
  {
    auto data = util::read_file(path);
    return data ? *data : std::string("<unreadable>");
  }

  static FetchLimits quick()
  {
    FetchLimits limits;
    limits.connect_timeout_ms = 5'000;
    limits.total_timeout_ms = 10'000;
    return limits;
  }

private:
  std::optional<util::TempDir> m_dir;
  std::optional<HttpServer> m_server;
};

std::string binary_bytes(std::size_t size)
{
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  }
  return bytes;
}

TEST(HttpUrl, AcceptsOnlyHttpAndHttps)
{
  EXPECT_TRUE(is_http_url("http://example.com/x"));
  EXPECT_TRUE(is_http_url("HTTPS://example.com/x"));
  EXPECT_TRUE(is_http_url("hTtP://example.com"));
  EXPECT_FALSE(is_http_url("ftp://example.com/x"));
  EXPECT_FALSE(is_http_url("file:///etc/passwd"));
  EXPECT_FALSE(is_http_url("example.com/x"));
  EXPECT_FALSE(is_http_url("http:/example.com"));
  EXPECT_FALSE(is_http_url(" http://example.com"));
  EXPECT_FALSE(is_http_url(""));
}

TEST(HttpUrl, RedactDropsUserinfo)
{
  EXPECT_EQ(redact_url("https://user:s3cret@mirror.example/hex/x.tar"),
            "https://mirror.example/hex/x.tar");
  EXPECT_EQ(redact_url("http://u:p@ss@host:8080?q=a@b"), "http://host:8080?q=a@b");
  EXPECT_EQ(redact_url("http://host/path@x"), "http://host/path@x");
  EXPECT_EQ(redact_url("http://host/a\r\nb"), "http://host/a??b");
}

TEST_F(HttpFetchTest, FetchesAFileWholeAndByteEqual)
{
  auto bytes = binary_bytes(300'000);
  auto path = serve_file("pkg-1.0.0.tar", bytes);
  auto result = fetch_to_file(server().url(path), dest(), quick());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(read(dest()), bytes);
  EXPECT_EQ(server().requests(path), 1u);
  EXPECT_EQ(std::distance(fs::directory_iterator(out()), fs::directory_iterator()), 1);
}

TEST_F(HttpFetchTest, ReplacesAnExistingDestination)
{
  std::ofstream(dest()) << "old";
  auto path = serve_file("pkg-1.0.0.tar", "new contents");
  auto result = fetch_to_file(server().url(path), dest(), quick());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(read(dest()), "new contents");
}

TEST_F(HttpFetchTest, FetchesAnEmptyFile)
{
  auto path = serve_file("empty-1.0.0.tar", "");
  auto result = fetch_to_file(server().url(path), dest(), quick());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(fs::exists(dest()));
  EXPECT_EQ(fs::file_size(dest()), 0u);
}

TEST_F(HttpFetchTest, MissingFileIsNotFoundAndLeavesNothing)
{
  auto url = server().url("/tarballs/absent-1.0.0.tar");
  auto result = fetch_to_file(url, dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::not_found);
  EXPECT_NE(result.error().message.find(url), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find("404"), std::string::npos) << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, GoneIsNotFound)
{
  server().status("/gone", 410);
  auto result = fetch_to_file(server().url("/gone"), dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::not_found);
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, ServerErrorIsHttpError)
{
  server().status("/broken", 500, std::string(100'000, 'e'));
  auto result = fetch_to_file(server().url("/broken"), dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::http_error);
  EXPECT_NE(result.error().message.find("500"), std::string::npos) << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, FollowsARedirectOnTheSameServer)
{
  auto path = serve_file("pkg-1.0.0.tar", "redirected body");
  server().redirect("/old", path, 301);
  server().redirect("/older", server().url("/old"), 302);
  auto result = fetch_to_file(server().url("/older"), dest(), quick());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(read(dest()), "redirected body");
  EXPECT_EQ(server().requests("/older"), 1u);
  EXPECT_EQ(server().requests("/old"), 1u);
  EXPECT_EQ(server().requests(path), 1u);
}

TEST_F(HttpFetchTest, RefusesARedirectToAFileUrl)
{
  server().redirect("/evil", "file:///etc/passwd");
  auto result = fetch_to_file(server().url("/evil"), dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::refused);
  EXPECT_NE(result.error().message.find("file:///etc/passwd"), std::string::npos)
      << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, RefusesARedirectToAnFtpUrl)
{
  ClosedPort closed;
  server().redirect("/evil", "ftp://127.0.0.1:" + std::to_string(closed.port()) + "/x.tar");
  auto result = fetch_to_file(server().url("/evil"), dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::refused) << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, RefusesTooManyRedirects)
{
  auto path = serve_file("pkg-1.0.0.tar", "body");
  server().redirect("/r1", "/r2");
  server().redirect("/r2", "/r3");
  server().redirect("/r3", path);
  auto limits = quick();
  limits.max_redirects = 2;
  auto result = fetch_to_file(server().url("/r1"), dest(), limits);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::refused) << result.error().message;
  EXPECT_EQ(server().requests(path), 0u);
  EXPECT_TRUE(out_is_empty());

  limits.max_redirects = 3;
  auto allowed = fetch_to_file(server().url("/r1"), dest(), limits);
  ASSERT_TRUE(allowed) << allowed.error().message;
  EXPECT_EQ(read(dest()), "body");
}

TEST_F(HttpFetchTest, RefusesARedirectLoop)
{
  server().redirect("/loop", "/loop");
  auto result = fetch_to_file(server().url("/loop"), dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::refused);
  EXPECT_EQ(server().requests("/loop"), 6u); // the request and 5 redirects
}

TEST_F(HttpFetchTest, RefusesNonHttpUrlsWithoutConnecting)
{
  auto port = std::to_string(server().port());
  for (const std::string& url :
       {"ftp://127.0.0.1:" + port + "/x.tar", std::string("file:///etc/passwd"),
        "127.0.0.1:" + port + "/x.tar", "gopher://127.0.0.1:" + port + "/",
        "dict://127.0.0.1:" + port + "/"}) {
    auto result = fetch_to_file(url, dest(), quick());
    ASSERT_FALSE(result) << url;
    EXPECT_EQ(result.error().failure, FetchFailure::refused) << url;
  }
  EXPECT_EQ(server().connections(), 0u);
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, RefusesAMalformedUrl)
{
  auto result = fetch_to_file("http://exa mple.com:99999999/x", dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::refused) << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, AnnouncedBodyOverTheCapIsTooLarge)
{
  auto path = serve_file("big-1.0.0.tar", std::string(200'000, 'b'));
  auto limits = quick();
  limits.max_bytes = 100'000;
  auto result = fetch_to_file(server().url(path), dest(), limits);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::too_large) << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, BodyAtTheCapIsAccepted)
{
  auto path = serve_file("exact-1.0.0.tar", std::string(100'000, 'b'));
  server().unsized("/unsized-exact", 100'000);
  auto limits = quick();
  limits.max_bytes = 100'000;
  ASSERT_TRUE(fetch_to_file(server().url(path), dest(), limits));
  EXPECT_EQ(fs::file_size(dest()), 100'000u);
  auto unsized = fetch_to_file(server().url("/unsized-exact"), dest(), limits);
  ASSERT_TRUE(unsized) << unsized.error().message;
  EXPECT_EQ(fs::file_size(dest()), 100'000u);
}

TEST_F(HttpFetchTest, UnannouncedBodyOverTheCapIsTooLarge)
{
  server().unsized("/close-delimited", 50u << 20);
  server().unsized("/chunked", 50u << 20, true);
  auto limits = quick();
  limits.max_bytes = 100'000;
  for (const char* path : {"/close-delimited", "/chunked"}) {
    auto result = fetch_to_file(server().url(path), dest(), limits);
    ASSERT_FALSE(result) << path;
    EXPECT_EQ(result.error().failure, FetchFailure::too_large) << result.error().message;
    EXPECT_TRUE(out_is_empty()) << path;
  }
}

TEST_F(HttpFetchTest, UnderstatedLengthKeepsOnlyWhatWasAnnounced)
{
  // The server announces 1000 bytes and sends 50 MiB: only the announced
  // bytes are read, never anything past the cap.
  server().lying_length("/liar", 1000, 50u << 20);
  auto limits = quick();
  limits.max_bytes = 100'000;
  auto result = fetch_to_file(server().url("/liar"), dest(), limits);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(fs::file_size(dest()), 1000u);
}

TEST_F(HttpFetchTest, OverstatedLengthIsTooLargeOrTruncated)
{
  auto limits = quick();
  limits.max_bytes = 100'000;
  // Announced over the cap: refused before the body, whatever follows.
  server().lying_length("/over", 10u << 20, 10);
  auto over = fetch_to_file(server().url("/over"), dest(), limits);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().failure, FetchFailure::too_large) << over.error().message;
  // Announced under the cap but cut short: a failed transfer, never a short file.
  server().lying_length("/short", 5000, 10);
  auto truncated = fetch_to_file(server().url("/short"), dest(), limits);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().failure, FetchFailure::network) << truncated.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, StalledBodyTimesOut)
{
  server().stall("/slow", 10s);
  auto limits = quick();
  limits.total_timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  auto result = fetch_to_file(server().url("/slow"), dest(), limits);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::timeout) << result.error().message;
  EXPECT_LT(elapsed, 5s);
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, DrippingBodyTimesOut)
{
  // Bytes keep arriving, but the total time is bounded all the same.
  server().drip("/drip", 1000, 100ms);
  auto limits = quick();
  limits.total_timeout_ms = 300;
  auto result = fetch_to_file(server().url("/drip"), dest(), limits);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::timeout) << result.error().message;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, ClosedPortIsANetworkFailure)
{
  ClosedPort closed;
  auto result = fetch_to_file(closed.url("/tarballs/pkg-1.0.0.tar"), dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::network) << result.error().message;
  EXPECT_NE(result.error().message.find(closed.url("/tarballs/pkg-1.0.0.tar")), std::string::npos);
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, MessagesNeverShowThePassword)
{
  auto url = "http://mirror-user:hunter2@127.0.0.1:" + std::to_string(server().port()) +
             "/tarballs/absent-1.0.0.tar";
  auto result = fetch_to_file(url, dest(), quick());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().failure, FetchFailure::not_found);
  EXPECT_EQ(result.error().message.find("hunter2"), std::string::npos) << result.error().message;
  EXPECT_EQ(result.error().message.find("mirror-user"), std::string::npos);
  EXPECT_NE(result.error().message.find(server().url("/tarballs/absent-1.0.0.tar")),
            std::string::npos)
      << result.error().message;
}

TEST_F(HttpFetchTest, UnwritableDestinationIsLocalIo)
{
  auto path = serve_file("pkg-1.0.0.tar", "body");
  auto missing = fetch_to_file(server().url(path), out() / "missing" / "pkg.tar", quick());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().failure, FetchFailure::local_io) << missing.error().message;

  std::ofstream(out() / "plain") << "a file, not a directory";
  auto not_dir = fetch_to_file(server().url(path), out() / "plain" / "pkg.tar", quick());
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().failure, FetchFailure::local_io) << not_dir.error().message;

  // The destination itself is a directory: the rename fails, the temporary goes.
  fs::create_directories(out() / "dir" / "inside");
  auto onto_dir = fetch_to_file(server().url(path), out() / "dir", quick());
  ASSERT_FALSE(onto_dir);
  EXPECT_EQ(onto_dir.error().failure, FetchFailure::local_io) << onto_dir.error().message;
  EXPECT_EQ(std::distance(fs::directory_iterator(out()), fs::directory_iterator()), 2);
}

TEST_F(HttpFetchTest, FailedLocalWriteIsLocalIo)
{
  // A file-size limit makes write(2) fail with EFBIG partway through the
  // body; run in a child so the limit does not outlive the test.
  auto path = serve_file("pkg-1.0.0.tar", std::string(200'000, 'w'));
  auto url = server().url(path);
  auto target = dest();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{50'000, 50'000};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    auto result = fetch_to_file(url, target, quick());
    bool ok = !result && result.error().failure == FetchFailure::local_io && !fs::exists(target) &&
              fs::is_empty(target.parent_path());
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_TRUE(out_is_empty());
}

TEST_F(HttpFetchTest, ServerServesConcurrently)
{
  // A stalled response does not hold up another request.
  server().stall("/slow", 10s);
  auto path = serve_file("pkg-1.0.0.tar", "body");
  std::atomic<bool> slow_done = false;
  std::optional<FetchFailure> slow_failure;
  std::thread slow([&] {
    auto result = fetch_to_file(server().url("/slow"), out() / "slow.tar", quick());
    slow_failure = result ? std::nullopt : std::optional(result.error().failure);
    slow_done = true;
  });
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server().requests("/slow") == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  auto result = fetch_to_file(server().url(path), dest(), quick());
  EXPECT_FALSE(slow_done.load());
  // Stopping the server cuts the stalled response short instead of waiting it out.
  server().stop();
  slow.join();
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(slow_failure, FetchFailure::network);
  EXPECT_EQ(server().requests("/slow"), 1u);
  EXPECT_EQ(server().requests(path), 1u);
  EXPECT_EQ(server().total_requests(), 2u);
  EXPECT_FALSE(fs::exists(out() / "slow.tar"));
}

TEST_F(HttpFetchTest, ServerSurvivesMalformedRequests)
{
  auto send_raw = [&](const std::string& bytes) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server().port());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    char buffer[4096];
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(fd);
  };
  send_raw("");
  send_raw("\r\n\r\n");
  send_raw("GARBAGE\r\n\r\n");
  send_raw("GET /x\r\n\r\n");
  const char nul_in_method[] = "G\0T / HTTP/1.1\r\n\r\n";
  send_raw(std::string(nul_in_method, sizeof nul_in_method - 1));
  send_raw("GET /../../etc/passwd HTTP/1.1\r\n\r\n");
  send_raw("POST /tarballs/x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  send_raw(std::string(64 * 1024, 'A'));
  auto path = serve_file("pkg-1.0.0.tar", "still serving");
  auto result = fetch_to_file(server().url(path), dest(), quick());
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(read(dest()), "still serving");
}

TEST_F(HttpFetchTest, ServerStopsPromptlyWithIdleConnections)
{
  // A client that connects and never sends a request must not delay the stop.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(server().port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server().connections() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  auto start = std::chrono::steady_clock::now();
  server().stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  char byte = 0;
  EXPECT_EQ(::recv(fd, &byte, 1, 0), 0); // closed by the server
  ::close(fd);
}

} // namespace

} // namespace sandbox::deps
