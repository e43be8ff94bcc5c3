#pragma once
// Hex packages and Mix projects that depend on them, built from the shared
// corpora (tests/support/hex_package.h writes the tarballs): decimal and
// nimble_options as published (their upstream mix.exs declares
// dev/test/docs-only dependencies), and money_fmt, a package with an optional
// dependency on decimal, as Jason has. Used by the integration tests and by
// bench/dependencies.cpp.

#include "support/hex_package.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sandbox::testing {

inline constexpr const char* kMoneyFmtMix = R"(defmodule MoneyFmt.MixProject do
  use Mix.Project

  def project do
    [app: :money_fmt, version: "0.1.0", deps: deps()]
  end

  defp deps do
    [{:decimal, "~> 3.0", optional: true}, {:dialyxir, "~> 1.0", only: [:dev, :test]}]
  end
end
)";

inline constexpr const char* kMoneyFmtLib = R"(defmodule MoneyFmt do
  def fmt(x) when is_integer(x), do: "#{x}.00"

  if Code.ensure_loaded?(Decimal) do
    def fmt(%Decimal{} = d), do: Decimal.to_string(Decimal.round(d, 2))
  end
end
)";

struct PackageMirror {
  fs::path dir;
  std::map<std::string, std::string> lock_lines; // app -> mix.lock line
  std::map<std::string, HexPackage> built;

  // A mix.lock pinning `apps`.
  [[nodiscard]] std::string lock(const std::vector<std::string>& apps) const
  {
    std::vector<std::string> lines;
    for (const auto& app : apps) {
      lines.push_back(lock_lines.at(app));
    }
    return mix_lock_text(lines);
  }
};

// A corpus library as a package: lib/ and its upstream mix.exs.
inline HexPackageSpec corpus_package(const fs::path& corpus, const fs::path& scratch,
                                     const std::string& version)
{
  auto name = corpus.filename().string();
  auto copy = scratch / ("pkg-" + name);
  fs::create_directories(copy);
  fs::copy(corpus / "lib", copy / "lib", fs::copy_options::recursive);
  fs::copy_file(corpus / "mix.exs.upstream", copy / "mix.exs",
                fs::copy_options::overwrite_existing);
  HexPackageSpec spec;
  spec.name = name;
  spec.version = version;
  spec.source_dir = copy;
  return spec;
}

inline HexPackageSpec money_fmt_package()
{
  HexPackageSpec spec;
  spec.name = "money_fmt";
  spec.version = "0.1.0";
  spec.requirements = {{"decimal", "~> 3.0", true}};
  spec.files = {{"mix.exs", kMoneyFmtMix, 0644}, {"lib/money_fmt.ex", kMoneyFmtLib, 0644}};
  return spec;
}

// Writes the package into the mirror and records its lock line.
inline std::expected<void, std::string> add_package(PackageMirror& mirror,
                                                    const HexPackageSpec& spec)
{
  fs::create_directories(mirror.dir / "tarballs");
  auto file = mirror.dir / "tarballs" / (spec.name + "-" + spec.version + ".tar");
  auto built = build_hex_package(spec, file);
  if (!built) {
    return std::unexpected(built.error());
  }
  auto app = spec.app.empty() ? spec.name : spec.app;
  mirror.lock_lines[app] = mix_lock_line(spec, *built);
  mirror.built[app] = *built;
  return {};
}

// decimal 3.1.1, nimble_options 1.1.1 and money_fmt 0.1.0 under scratch/mirror.
inline std::expected<PackageMirror, std::string> standard_mirror(const fs::path& corpora,
                                                                 const fs::path& scratch)
{
  PackageMirror mirror;
  mirror.dir = scratch / "mirror";
  for (const auto& spec : {corpus_package(corpora / "decimal", scratch, "3.1.1"),
                           corpus_package(corpora / "nimble_options", scratch, "1.1.1"),
                           money_fmt_package()}) {
    if (auto added = add_package(mirror, spec); !added) {
      return std::unexpected(added.error());
    }
  }
  return mirror;
}

// The project's code: uses all three packages.
inline std::string shop_source(const std::string& module)
{
  return "defmodule " + module + " do\n"
         "  @schema NimbleOptions.new!(price: [type: :string, required: true])\n"
         "  def price(opts) do\n"
         "    opts = NimbleOptions.validate!(opts, @schema)\n"
         "    MoneyFmt.fmt(Decimal.new(opts[:price]))\n"
         "  end\n"
         "end\n";
}

// A project using all three (and a test-only dependency Mix filters out).
inline std::map<std::string, std::string> shop_project(const PackageMirror& mirror,
                                                       const std::string& app,
                                                       const std::string& module)
{
  return {{"mix.exs", "defmodule " + module + ".MixProject do\n"
                      "  use Mix.Project\n"
                      "  def project do\n"
                      "    [app: :" + app + ", version: \"0.2.0\", deps: [\n"
                      "      {:money_fmt, \"~> 0.1\"},\n"
                      "      {:decimal, \"~> 3.1\"},\n"
                      "      {:nimble_options, \"~> 1.1\"},\n"
                      "      {:credo, \"~> 1.7\", only: :test, runtime: false}\n"
                      "    ]]\n"
                      "  end\n"
                      "end\n"},
          {"lib/shop.ex", shop_source(module)},
          {"mix.lock", mirror.lock({"decimal", "money_fmt", "nimble_options"})}};
}

} // namespace sandbox::testing
