// What a hostile job tries: the network, other processes, new namespaces,
// mounts, kernel calls. Each attempt fails with EPERM or kills the job.

#include "jail_test_support.h"

#include <poll.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace sandbox::jail::testing {
namespace {

using SecurityTest = JailTest;

// A helper that tries one thing (argv[1]) and prints "<name> <errno name>".
const char* kProbeSource = R"(
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <signal.h>
#include <unistd.h>

static void show(const char* what, int rc) {
  printf("%s %s\n", what, rc < 0 ? (errno == EPERM ? "EPERM" : strerror(errno)) : "ok");
}

int main(int argc, char** argv) {
  const char* mode = argv[1];
  int port = argc > 2 ? atoi(argv[2]) : 0;
  if (!strcmp(mode, "tcp4")) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    show("socket", fd);
    if (fd >= 0) {
      struct sockaddr_in a = {0};
      a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      show("connect", connect(fd, (struct sockaddr*)&a, sizeof a));
    }
  } else if (!strcmp(mode, "tcp6")) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    show("socket", fd);
    if (fd >= 0) {
      struct sockaddr_in6 a = {0};
      a.sin6_family = AF_INET6; a.sin6_port = htons(port); a.sin6_addr = in6addr_loopback;
      show("connect", connect(fd, (struct sockaddr*)&a, sizeof a));
    }
  } else if (!strcmp(mode, "udp")) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    show("socket", fd);
    if (fd >= 0) {
      struct sockaddr_in a = {0};
      a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      show("sendto", sendto(fd, "x", 1, 0, (struct sockaddr*)&a, sizeof a));
    }
  } else if (!strcmp(mode, "unix")) {
    int sv[2];
    show("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  } else if (!strcmp(mode, "ptrace")) {
    show("ptrace", (int)ptrace(PTRACE_ATTACH, 1, 0, 0));
  } else if (!strcmp(mode, "mount")) {
    show("mount", mount("tmpfs", "/tmp", "tmpfs", 0, 0));
  } else if (!strcmp(mode, "unshare")) {
    show("unshare", unshare(CLONE_NEWUSER));
  } else if (!strcmp(mode, "clone_newns")) {
    show("clone", (int)syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
  } else if (!strcmp(mode, "clone3")) {
    show("clone3", (int)syscall(SYS_clone3, 0, 0));
  } else if (!strcmp(mode, "fork")) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    show("fork", pid);
  } else if (!strcmp(mode, "reboot")) {
    show("reboot", reboot(RB_AUTOBOOT));
  } else if (!strcmp(mode, "memfd")) {
    show("memfd_create", (int)syscall(SYS_memfd_create, "x", 0));
  } else if (!strcmp(mode, "caps")) {
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) || !strncmp(line, "Seccomp:", 8))
        fputs(line, stdout);
  }
  return 0;
}
)";

class Listener {
public:
  Listener(int family, int type)
  {
    m_fd = ::socket(family, type, 0);
    if (family == AF_INET) {
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::bind(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
      socklen_t len = sizeof address;
      ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&address), &len);
      m_port = ntohs(address.sin_port);
    } else {
      sockaddr_in6 address{};
      address.sin6_family = AF_INET6;
      address.sin6_addr = in6addr_loopback;
      ::bind(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
      socklen_t len = sizeof address;
      ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&address), &len);
      m_port = ntohs(address.sin6_port);
    }
    if (type == SOCK_STREAM) {
      ::listen(m_fd, 8);
    }
  }
  ~Listener() { ::close(m_fd); }
  [[nodiscard]] int port() const { return m_port; }
  [[nodiscard]] bool valid() const { return m_fd >= 0 && m_port > 0; }
  // Something arrived: a connection or a datagram.
  [[nodiscard]] bool touched() const
  {
    pollfd fd{m_fd, POLLIN, 0};
    return ::poll(&fd, 1, 100) > 0;
  }

private:
  int m_fd = -1;
  int m_port = 0;
};

class SecurityProbeTest : public JailTest {
protected:
  std::string probe(const std::string& mode, int port = 0, NamespaceRunnerOptions options = {})
  {
    if (m_probe.empty()) {
      m_probe = compile_helper("probe", kProbeSource);
    }
    auto result = runner(std::move(options)).run(spec({m_probe, mode, std::to_string(port)}));
    EXPECT_EQ(result.verdict, Verdict::exited) << describe(result);
    return result.output;
  }
  std::string m_probe;
};

TEST_F(SecurityProbeTest, TcpToHostLoopbackDoesNotArrive)
{
  Listener listener(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(listener.valid());
  EXPECT_EQ(probe("tcp4", listener.port()), "socket EPERM\n");
  EXPECT_FALSE(listener.touched());
}

TEST_F(SecurityProbeTest, TcpWithoutSeccompStillHasNoRoute)
{
  // The network namespace on its own: a socket, but no way out.
  Listener listener(AF_INET, SOCK_STREAM);
  ASSERT_TRUE(listener.valid());
  NamespaceRunnerOptions options;
  options.use_seccomp = false;
  auto output = probe("tcp4", listener.port(), options);
  EXPECT_TRUE(output.starts_with("socket ok\nconnect ")) << output;
  EXPECT_EQ(output.find("connect ok"), std::string::npos) << output;
  EXPECT_FALSE(listener.touched());
}

TEST_F(SecurityProbeTest, Ipv6ToHostLoopbackDoesNotArrive)
{
  Listener listener(AF_INET6, SOCK_STREAM);
  if (!listener.valid()) {
    GTEST_SKIP() << "no IPv6 loopback on this host";
  }
  EXPECT_EQ(probe("tcp6", listener.port()), "socket EPERM\n");
  EXPECT_FALSE(listener.touched());
}

TEST_F(SecurityProbeTest, UdpToHostLoopbackDoesNotArrive)
{
  Listener listener(AF_INET, SOCK_DGRAM);
  ASSERT_TRUE(listener.valid());
  EXPECT_EQ(probe("udp", listener.port()), "socket EPERM\n");
  EXPECT_FALSE(listener.touched());
}

TEST_F(SecurityProbeTest, UnixSocketsAndForkAndMemfdWork)
{
  EXPECT_EQ(probe("unix"), "socketpair ok\n");
  EXPECT_EQ(probe("fork"), "fork ok\n");
  EXPECT_EQ(probe("memfd"), "memfd_create ok\n");
}

TEST_F(SecurityProbeTest, PtraceMountUnshareCloneAreRefused)
{
  EXPECT_EQ(probe("ptrace"), "ptrace EPERM\n");
  EXPECT_EQ(probe("mount"), "mount EPERM\n");
  EXPECT_EQ(probe("unshare"), "unshare EPERM\n");
  EXPECT_EQ(probe("clone_newns"), "clone EPERM\n");
  EXPECT_EQ(probe("clone3"), "clone3 Function not implemented\n");
}

TEST_F(SecurityProbeTest, NoCapabilitiesAndNoNewPrivs)
{
  auto output = probe("caps");
  EXPECT_NE(output.find("CapInh:\t0000000000000000"), std::string::npos) << output;
  EXPECT_NE(output.find("CapPrm:\t0000000000000000"), std::string::npos) << output;
  EXPECT_NE(output.find("CapEff:\t0000000000000000"), std::string::npos) << output;
  EXPECT_NE(output.find("CapBnd:\t0000000000000000"), std::string::npos) << output;
  EXPECT_NE(output.find("CapAmb:\t0000000000000000"), std::string::npos) << output;
  EXPECT_NE(output.find("NoNewPrivs:\t1"), std::string::npos) << output;
  EXPECT_NE(output.find("Seccomp:\t2"), std::string::npos) << output;
}

TEST_F(SecurityTest, RebootIsASeccompViolation)
{
  auto helper = compile_helper("reboot", R"(
#include <sys/reboot.h>
#include <unistd.h>
int main(void) { reboot(RB_AUTOBOOT); return 0; })");
  auto result = runner().run(spec({helper}));
  ASSERT_EQ(result.verdict, Verdict::seccomp_violation) << describe(result);
  EXPECT_EQ(result.signal, SIGSYS);
}

#if defined(__x86_64__)
TEST_F(SecurityTest, ForeignArchitectureCallsKill)
{
  // x32 (syscall number with bit 30) and i386 (int 0x80) are other syscall
  // tables the rules do not cover: the filter kills.
  auto x32 = compile_helper("x32", R"(
#include <unistd.h>
#include <sys/syscall.h>
int main(void) { syscall(0x40000000 | SYS_getpid); return 0; })");
  auto result = runner().run(spec({x32}));
  EXPECT_EQ(result.verdict, Verdict::seccomp_violation) << describe(result);
  auto i386 = compile_helper("i386", R"(
int main(void) { int ret; __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory"); return 0; })");
  result = runner().run(spec({i386}));
  EXPECT_EQ(result.verdict, Verdict::seccomp_violation) << describe(result);
}
#endif

TEST_F(SecurityTest, BeamTcpConnectIsEperm)
{
  auto result =
      runner().run(spec({"/usr/bin/erl", "-noshell", "-eval",
                         "io:format(\"~p~n\", [gen_tcp:connect({127,0,0,1}, 1, [])]), halt()."}));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.output, "{error,eperm}\n");
}

TEST_F(SecurityTest, OnlyTheJobsFilesAreVisible)
{
  auto result = runner().run(shell("ls /; ls /dev; ls /proc | grep -c '^[0-9]'"));
  ASSERT_EQ(result.verdict, Verdict::exited) << describe(result);
  EXPECT_EQ(result.output.find("root"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("home"), std::string::npos) << result.output;
  // Processes: init, sh, ls/grep of the pipeline.
  EXPECT_NE(result.output.find("null\nrandom"), std::string::npos) << result.output;
}

} // namespace
} // namespace sandbox::jail::testing
