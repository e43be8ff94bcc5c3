// Security scanner cost, one core (thread CPU time, pinned to CPU 0): scan throughput over the real-library
// corpora (every .ex/.exs/.erl file, read into memory once) in MB/s, against
// the reference implementation's approach (regular expressions over the text)
// and against a tree-sitter parse of every byte, in the same run; the share
// of the Elixir the parser still reads; and the BEAM import audit's cost per file over the
// BEAMs of the installed Elixir standard library. BENCH_ROUNDS (default 5).

#include "beam/beam.h"
#include "core/options.h"
#include "scan/beam_audit.h"
#include "scan/elixir_prefilter.h"
#include "scan/scanner.h"
#include "syntax/elixir_tree.h"
#include "util/fs.h"
#include "bench_support.h"

#include <sched.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
// The time this thread spent on a core: the goal is per core, and the
// machine is shared, so wall time would count other programs' turns.
struct Clock {
  using time_point = double;
  static double now()
  {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  }
};

struct Source {
  std::string name;
  std::string text;
};

std::vector<Source> corpus_sources()
{
  std::vector<Source> out;
  fs::path root = bench::corpora_dir();
  for (const char* lib : {"decimal", "mime", "nimble_options"}) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root / lib, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      auto lang = sandbox::scan::language_of(it->path());
      if (lang != sandbox::scan::Language::elixir && lang != sandbox::scan::Language::erlang) continue;
      auto text = sandbox::util::read_file(it->path());
      if (text) out.push_back({fs::relative(it->path(), root).string(), std::move(*text)});
    }
  }
  return out;
}

double seconds_since(Clock::time_point start)
{
  return Clock::now() - start;
}

} // namespace

int main()
{
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  (void)sched_setaffinity(0, sizeof(one), &one);
  int rounds = std::getenv("BENCH_ROUNDS") ? std::atoi(std::getenv("BENCH_ROUNDS")) : 5;
  if (rounds < 1) rounds = 1;

  auto sources = corpus_sources();
  std::size_t bytes = 0;
  for (const auto& s : sources) bytes += s.text.size();
  if (bytes == 0) {
    std::fprintf(stderr, "no corpus sources found (set SANDBOX_CORPORA)\n");
    return 1;
  }
  sandbox::scan::ScanConfig config{sandbox::core::default_restricted_modules(), {}, 3};

  // The engine's scan: syntax tree, resolution, rule table.
  std::size_t findings = 0;
  auto start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    sandbox::scan::Report report(config);
    for (const auto& s : sources) (void)sandbox::scan::scan_source(s.name, s.text, report);
    findings = report.result().threats.size() + report.result().warnings.size();
  }
  double scan_mbs = bytes * rounds / 1e6 / seconds_since(start);

  // How much of the Elixir the parser reads: the rest is cut as inert
  // (scan/elixir_prefilter.h).
  std::size_t elixir_bytes = 0, cut_bytes = 0;
  {
    sandbox::scan::RuleSet rules(config.restricted_modules, config.allowed_operations);
    for (const auto& s : sources) {
      if (sandbox::scan::language_of(s.name) != sandbox::scan::Language::elixir) continue;
      elixir_bytes += s.text.size();
      auto lexed = sandbox::syntax::lex_elixir(s.text);
      if (!lexed) continue;
      for (const auto& range :
           sandbox::scan::blocks_to_skip(*lexed, sandbox::scan::vocabulary_in(s.text, *lexed, rules, {}))) {
        cut_bytes += range.end - range.begin;
      }
    }
  }

  // Where the time goes without the cut: the tree-sitter parse of everything.
  start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& s : sources) {
      if (sandbox::scan::language_of(s.name) == sandbox::scan::Language::elixir) {
        (void)sandbox::syntax::Tree::parse(s.text);
      }
    }
  }
  double parse_mbs = bytes * rounds / 1e6 / seconds_since(start);

  // The reference approach: regular expressions over the raw text.
  std::regex patterns(R"(System\.cmd|System\.shell|:os\.cmd|Code\.eval_\w+|File\.rm_rf|:erlang\.halt|Port\.open|File\.write|:gen_tcp|spawn)");
  std::size_t regex_hits = 0;
  start = Clock::now();
  for (int r = 0; r < rounds; ++r) {
    for (const auto& s : sources) {
      regex_hits += static_cast<std::size_t>(std::distance(
        std::sregex_iterator(s.text.begin(), s.text.end(), patterns), std::sregex_iterator()));
    }
  }
  double regex_mbs = bytes * rounds / 1e6 / seconds_since(start);

  // The audit: read, validate and check the imports of each BEAM.
  std::vector<fs::path> beams;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/elixir/lib/elixir/ebin", ec)) {
    if (entry.path().extension() == ".beam") beams.push_back(entry.path());
  }
  double audit_us = 0;
  if (!beams.empty()) {
    start = Clock::now();
    for (int r = 0; r < rounds; ++r) (void)sandbox::scan::audit_beam_files(beams, config);
    audit_us = seconds_since(start) * 1e6 / static_cast<double>(beams.size() * rounds);
  }

  std::printf("corpora: %zu files, %zu bytes, %d rounds, %zu findings per round; regex baseline hits %zu\n",
              sources.size(), bytes, rounds, findings, regex_hits / rounds);
  std::printf("BENCH scan_throughput %.2f MB/s\n", scan_mbs);
  std::printf("BENCH scan_parse_only %.2f MB/s\n", parse_mbs);
  std::printf("BENCH scan_parsed_fraction %.1f %%\n",
              elixir_bytes ? 100.0 * static_cast<double>(elixir_bytes - cut_bytes) / static_cast<double>(elixir_bytes) : 0.0);
  std::printf("BENCH scan_vs_whole_parse %.2f x\n", scan_mbs / parse_mbs);
  std::printf("BENCH regex_scan_throughput %.2f MB/s\n", regex_mbs);
  std::printf("BENCH scan_vs_regex %.3f ratio\n", scan_mbs / regex_mbs);
  std::printf("BENCH audit_per_beam %.1f us\n", audit_us);
  std::printf("(audit over %zu BEAMs of the Elixir standard library)\n", beams.size());
  return 0;
}
