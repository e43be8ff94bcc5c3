#pragma once
// The jail's system-call filter: a table of rules (pure data, tested without
// processes) compiled once with libseccomp into a classic BPF program that
// the child loads with one prctl, so nothing is allocated after clone.

#include <linux/filter.h>

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

namespace sandbox::jail {

enum class SeccompAction {
  allow,
  deny_eperm,   // the call fails with EPERM; the program sees an ordinary error
  deny_enosys,  // the call fails with ENOSYS; libc falls back to an older call
  kill_process, // SIGSYS for the whole process: Verdict::seccomp_violation
};

std::string_view to_string(SeccompAction action);

// A condition on one argument: (arg & mask) op value.
struct ArgCondition {
  enum class Op { equal, not_equal, masked_equal };
  unsigned index = 0;
  Op op = Op::equal;
  std::uint64_t value = 0;
  std::uint64_t mask = ~0ull; // masked_equal only
  bool operator==(const ArgCondition&) const = default;
};

struct SeccompRule {
  std::string syscall;
  SeccompAction action = SeccompAction::deny_eperm;
  std::vector<ArgCondition> conditions; // all must hold; empty: always
  std::string why;
};

// The policy: default allow, the rules below deny. Foreign architectures
// (i386, x32) are killed by the filter's architecture check.
std::vector<SeccompRule> seccomp_rules();

// A compiled filter; program() points into this object.
class SeccompProgram {
public:
  [[nodiscard]] const sock_fprog* program() const { return &m_program; }
  [[nodiscard]] std::size_t size() const { return m_filter.size(); }

  SeccompProgram() = default;
  SeccompProgram(const SeccompProgram&) = delete;
  SeccompProgram& operator=(const SeccompProgram&) = delete;
  SeccompProgram(SeccompProgram&& other) noexcept { *this = std::move(other); }
  SeccompProgram& operator=(SeccompProgram&& other) noexcept
  {
    m_filter = std::move(other.m_filter);
    m_program = {static_cast<unsigned short>(m_filter.size()), m_filter.data()};
    return *this;
  }

private:
  friend std::expected<SeccompProgram, std::string>
  compile_seccomp(const std::vector<SeccompRule>& rules);
  std::vector<sock_filter> m_filter;
  sock_fprog m_program{};
};

// Errors name the rule libseccomp refused (an unknown syscall name is skipped:
// it does not exist on this architecture, so it cannot be called).
std::expected<SeccompProgram, std::string> compile_seccomp(const std::vector<SeccompRule>& rules);

// Loads the filter into the calling thread (after PR_SET_NO_NEW_PRIVS).
// Async-signal-safe; returns false with errno set.
bool load_seccomp(const SeccompProgram& program);

} // namespace sandbox::jail
