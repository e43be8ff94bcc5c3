// libFuzzer entry point for the Elixir scan: any byte string must scan with
// no crash, leak or undefined behaviour, and when the whole file parses
// cleanly, cutting inert blocks out of the parse (scan/elixir_prefilter.h)
// must give exactly the findings of the whole parse. Seed it with the
// corpora and tests/data/scan.

#include "core/options.h"
#include "scan/elixir_scanner.h"
#include "syntax/elixir_tree.h"
#include "util/json.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  using namespace sandbox;
  if (size > (1u << 20)) return 0;
  std::string source(reinterpret_cast<const char*>(data), size);
  scan::ScanConfig config{core::default_restricted_modules(), {}, 3};
  scan::Report cut(config);
  scan::Report whole(config);
  auto a = scan::scan_elixir_source("fuzz.ex", source, cut, scan::ElixirParse::skip_inert_blocks);
  auto b = scan::scan_elixir_source("fuzz.ex", source, whole, scan::ElixirParse::whole);
  if (!a || !b) return 0;
  auto tree = syntax::Tree::parse(source);
  if (!tree || tree->has_errors()) return 0;
  auto cut_json = util::dump_json(scan::to_json(cut.result()), 1);
  auto whole_json = util::dump_json(scan::to_json(whole.result()), 1);
  if (cut_json != whole_json) {
    std::fprintf(stderr, "findings differ\ncut: %s\nwhole: %s\n", cut_json.c_str(), whole_json.c_str());
    std::abort();
  }
  return 0;
}
