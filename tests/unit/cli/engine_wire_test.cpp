#include "cli/engine_wire.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>

namespace sandbox::cli::engine {
namespace {

namespace fs = std::filesystem;

TEST(EngineWire, RequestsRoundTripAsBytes)
{
  Request request;
  request.kind = "run";
  request.identity = "0.1.0 a:b:c:d";
  request.cwd = "/nonexistent/dir with spaces";
  request.umask = 027;
  request.out_terminal = true;
  request.argv = {"sandbox", "compile", std::string("bad\xff\0name", 9), ""};
  request.environment = {"PATH=/usr/bin", "SANDBOX_STATE_DIR=/s"};
  request.input = std::string("source\0with nul", 15);
  auto decoded = decode(encode(request));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->kind, request.kind);
  EXPECT_EQ(decoded->identity, request.identity);
  EXPECT_EQ(decoded->cwd, request.cwd);
  EXPECT_EQ(decoded->umask, 027u);
  EXPECT_TRUE(decoded->out_terminal);
  EXPECT_EQ(decoded->argv, request.argv);
  EXPECT_EQ(decoded->environment, request.environment);
  EXPECT_EQ(decoded->input, request.input);

  request.input.reset();
  decoded = decode(encode(request));
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(decoded->input);
}

TEST(EngineWire, TruncatedOrPaddedRequestsAreRefused)
{
  Request request;
  request.argv = {"sandbox", "scan", "x"};
  auto bytes = encode(request);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(decode(bytes.substr(0, cut))) << cut;
  }
  EXPECT_FALSE(decode(bytes + "x"));
}

TEST(EngineWire, FramesCarryTheirBytes)
{
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string big(100'000, 'x');
  ASSERT_TRUE(send_frame(fds[0], frame::out, "hello"));
  ASSERT_TRUE(send_frame(fds[0], frame::err, big));
  ::close(fds[0]);
  char type = 0;
  std::string payload;
  ASSERT_TRUE(read_frame(fds[1], type, payload));
  EXPECT_EQ(type, frame::out);
  EXPECT_EQ(payload, "hello");
  EXPECT_FALSE(read_frame(fds[1], type, payload, 1000)) << "past the cap";
  ::close(fds[1]);
}

TEST(EngineWire, TheEnvironmentContractNamesWhatResultsDependOn)
{
  std::string items[] = {"SANDBOX_STATE_DIR=/s",
                         "PATH=/bin",
                         "HOME=/h",
                         "TMPDIR=/t",
                         "XDG_STATE_HOME=/x",
                         "XDG_CONFIG_HOME=/c",
                         "SANDBOX_NO_DAEMON=1",
                         "SANDBOX_DAEMON_IDLE_EXIT=5",
                         "TERM=xterm",
                         "PWD=/w",
                         "SANDBOX_PACKAGE_MIRROR=/m",
                         "PATHX=/no"};
  std::vector<char*> env;
  for (auto& item : items) {
    env.push_back(item.data());
  }
  env.push_back(nullptr);
  EXPECT_EQ(environment_contract(env.data()),
            (std::vector<std::string>{"HOME=/h", "PATH=/bin", "SANDBOX_PACKAGE_MIRROR=/m",
                                      "SANDBOX_STATE_DIR=/s", "TMPDIR=/t", "XDG_CONFIG_HOME=/c",
                                      "XDG_STATE_HOME=/x"}));
}

TEST(EngineWire, TheSocketLivesInAPrivateDirectoryNamedByTheEnvironment)
{
  char pattern[] = "/tmp/engine-wire-XXXXXX";
  fs::path root = ::mkdtemp(pattern);
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  std::string previous = saved != nullptr ? saved : "";
  ::setenv("XDG_RUNTIME_DIR", root.c_str(), 1);
  auto a = locate({"PATH=/bin"});
  auto b = locate({"PATH=/usr/bin"});
  ASSERT_TRUE(a) << a.error();
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(fs::path(a->socket).parent_path(), root / "sandbox");
  EXPECT_NE(a->socket, b->socket);
  EXPECT_EQ(fs::status(root / "sandbox").permissions() & fs::perms::all, fs::perms::owner_all);
  ::chmod((root / "sandbox").c_str(), 0755);
  EXPECT_FALSE(locate({"PATH=/bin"})) << "a directory others may use is refused";
  if (saved != nullptr) {
    ::setenv("XDG_RUNTIME_DIR", previous.c_str(), 1);
  } else {
    ::unsetenv("XDG_RUNTIME_DIR");
  }
  fs::remove_all(root);
}

} // namespace
} // namespace sandbox::cli::engine
