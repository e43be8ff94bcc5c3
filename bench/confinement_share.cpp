// The share of real library files whose compile is confined
// (scan/confinement.h): every .ex/.exs/.erl file of the corpora, each
// classified on its own as a one-file submission, against the modules a
// fresh VM of the installed toolchain has on its code path (or, without one,
// the modules the allowlist names). Prints the share per corpus and overall,
// and the most frequent reasons a file is not confined; then each corpus's
// lib/ as one submission, as a library is compiled.
//
//   bench_confinement_share            the corpora (bench_support.h, corpora_dir)
//   bench_confinement_share FILE...    each named file, with its verdict

#include "scan/confinement.h"
#include "util/fs.h"
#include "bench_support.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;

// Every module on the code path of a fresh `elixir` VM, as BEAM atoms; empty
// when there is no toolchain to ask.
std::set<std::string> available_modules()
{
  std::set<std::string> out;
  FILE* pipe = ::popen("elixir -e 'for {m, _, _} <- :code.all_available(), do: IO.puts(m)' 2>/dev/null", "r");
  if (pipe == nullptr) return out;
  char line[1024];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::string name(line);
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
    if (!name.empty()) out.insert(name);
  }
  ::pclose(pipe);
  return out;
}

bool is_source(const fs::path& path)
{
  auto ext = path.extension();
  return ext == ".ex" || ext == ".exs" || ext == ".erl";
}

// "lib/a.ex:3: module body of A calls X.y/2 (...)" -> "module body calls X.y/2":
// the reason without its place, the module and the call chain, for counting.
std::string reason_kind(const std::string& reason)
{
  auto colon = reason.find(": ");
  std::string out = colon == std::string::npos ? reason : reason.substr(colon + 2);
  bool reached = false;
  if (auto chain = out.find(" (runs while compiling"); chain != std::string::npos) {
    out.erase(chain);
    reached = true;
  }
  if (auto paren = out.find(" ("); paren != std::string::npos) out.erase(paren);
  for (auto [prefix, label] : {std::pair{"module body of ", "module body"}, std::pair{"function ", "function"},
                                std::pair{"macro ", "macro"}}) {
    if (!out.starts_with(prefix)) continue;
    auto space = out.find(' ', std::string_view(prefix).size());
    if (space != std::string::npos) out = label + out.substr(space);
  }
  if (reached) out += ", reached from compile-time code";
  return out;
}

} // namespace

int main(int argc, char** argv)
{
  auto loaded = available_modules();
  std::printf("modules of the compiling VM: %zu%s\n", loaded.size(),
              loaded.empty() ? " (no elixir in PATH: only the allowlist's)" : "");
  if (argc > 1) {
    for (int i = 1; i < argc; ++i) {
      auto text = sandbox::util::read_file(argv[i]);
      if (!text) {
        std::printf("%s: cannot read\n", argv[i]);
        continue;
      }
      auto verdict = sandbox::scan::classify_confinement({{argv[i], std::move(*text)}}, loaded);
      std::printf("%s: %s\n", argv[i], verdict.confined ? "confined" : verdict.reason.c_str());
    }
    return 0;
  }
  fs::path root = bench::corpora_dir();
  std::vector<fs::path> corpora;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (entry.is_directory()) corpora.push_back(entry.path());
  }
  std::sort(corpora.begin(), corpora.end());
  std::map<std::string, int> reasons;
  int total = 0;
  int total_confined = 0;
  for (const auto& corpus : corpora) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(corpus)) {
      if (entry.is_regular_file() && is_source(entry.path())) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    int confined = 0;
    for (const auto& path : files) {
      auto text = sandbox::util::read_file(path);
      if (!text) continue;
      auto relative = fs::relative(path, root).string();
      auto verdict = sandbox::scan::classify_confinement({{relative, std::move(*text)}}, loaded);
      if (verdict.confined) {
        ++confined;
        std::printf("  confined      %s\n", relative.c_str());
      } else {
        ++reasons[reason_kind(verdict.reason)];
        std::printf("  not confined  %s\n", verdict.reason.c_str());
      }
    }
    // The library as it is compiled: every file under lib/ as one submission.
    std::vector<sandbox::scan::SourceFile> library;
    for (const auto& path : files) {
      auto relative = fs::relative(path, root);
      if (relative.string().find("/lib/") == std::string::npos) continue;
      if (auto text = sandbox::util::read_file(path)) library.push_back({relative.string(), std::move(*text)});
    }
    if (!library.empty()) {
      auto verdict = sandbox::scan::classify_confinement(library, loaded);
      std::printf("%s lib/ as one submission (%zu files): %s\n", corpus.filename().c_str(), library.size(),
                  verdict.confined ? "confined" : verdict.reason.c_str());
    }
    auto count = static_cast<int>(files.size());
    std::printf("%s: %d of %d files confined (%.0f%%)\n", corpus.filename().c_str(), confined, count,
                count == 0 ? 0.0 : 100.0 * confined / count);
    std::printf("BENCH confinement_share_%s %.3f ratio\n", corpus.filename().c_str(),
                count == 0 ? 0.0 : static_cast<double>(confined) / count);
    total += count;
    total_confined += confined;
  }
  std::printf("overall: %d of %d files confined (%.0f%%)\n", total_confined, total,
              total == 0 ? 0.0 : 100.0 * total_confined / total);
  std::printf("BENCH confinement_share %.3f ratio\n",
              total == 0 ? 0.0 : static_cast<double>(total_confined) / total);
  std::vector<std::pair<int, std::string>> ranked;
  for (const auto& [reason, count] : reasons) ranked.emplace_back(count, reason);
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::printf("top reasons for not confined:\n");
  for (std::size_t i = 0; i < ranked.size() && i < 10; ++i) {
    std::printf("  %3d  %s\n", ranked[i].first, ranked[i].second.c_str());
  }
  return 0;
}
