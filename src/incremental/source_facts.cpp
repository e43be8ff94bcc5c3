#include "incremental/source_facts.h"

#include "syntax/elixir_tree.h"
#include "util/hash.h"

#include <memory>
#include <optional>

namespace sandbox::incremental {

namespace {

using syntax::Node;

enum class Zone { module_body, runtime, typespec };

struct Context {
  std::string module;
  std::shared_ptr<std::map<std::string, std::string>> aliases;
  Zone zone = Zone::module_body;
};

// Comments are extras the grammar attaches anywhere; they never change code.
bool is_comment(const Node& node)
{
  return node.type() == "comment";
}

// Pre-order encoding of node types, child counts and leaf text: unambiguous,
// independent of positions, whitespace and comments.
std::string normalized(const Node& root)
{
  std::string out;
  syntax::walk(root, [&](const Node& node) {
    if (is_comment(node)) {
      return false;
    }
    out += node.type();
    std::uint32_t children = 0;
    for (std::uint32_t i = 0; i < node.child_count(); ++i) {
      children += is_comment(node.child(i)) ? 0 : 1;
    }
    out += '/';
    out += std::to_string(children);
    if (children == 0) {
      out += '=';
      out += std::to_string(node.text().size());
      out += ':';
      out += node.text();
    }
    out += ';';
    return true;
  });
  return out;
}

std::vector<Node> arguments_of(const Node& call)
{
  std::vector<Node> out;
  for (const auto& child : call.named_children()) {
    if (child.type() == "arguments") {
      for (const auto& arg : child.named_children()) {
        if (!is_comment(arg)) {
          out.push_back(arg);
        }
      }
    }
  }
  return out;
}

Node do_block_of(const Node& call)
{
  return call.first_child_of_type("do_block");
}

// Value of keyword `key:` among a call's arguments.
Node keyword_value(const std::vector<Node>& args, std::string_view key)
{
  for (const auto& arg : args) {
    if (arg.type() != "keywords") {
      continue;
    }
    for (const auto& pair : arg.named_children()) {
      auto k = pair.field("key");
      auto text = k ? k.text() : std::string_view{};
      while (!text.empty() && (text.back() == ' ' || text.back() == ':')) {
        text.remove_suffix(1);
      }
      if (pair.type() == "pair" && text == key) {
        return pair.field("value");
      }
    }
  }
  return {};
}

class Analyzer {
public:
  explicit Analyzer(SourceFacts& facts) : m_facts(facts) {}

  void run(const Node& root)
  {
    Context top;
    top.aliases = std::make_shared<std::map<std::string, std::string>>();
    m_stack.push_back({root, top});
    while (!m_stack.empty()) {
      auto [node, ctx] = std::move(m_stack.back());
      m_stack.pop_back();
      visit(node, ctx);
    }
  }

private:
  struct Frame {
    Node node;
    Context ctx;
  };

  void push_children(const Node& node, const Context& ctx)
  {
    auto children = node.named_children();
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      if (!is_comment(*it)) {
        m_stack.push_back({*it, ctx});
      }
    }
  }

  std::string resolve(std::string_view name, const Context& ctx) const
  {
    std::string text(name);
    if (text.starts_with("Elixir.")) {
      return text.substr(7);
    }
    if (text == "__MODULE__") {
      return ctx.module;
    }
    if (text.starts_with("__MODULE__.")) {
      return ctx.module.empty() ? text.substr(11) : ctx.module + text.substr(10);
    }
    auto dot = text.find('.');
    auto first = text.substr(0, dot);
    auto found = ctx.aliases->find(first);
    if (found != ctx.aliases->end()) {
      return dot == std::string::npos ? found->second : found->second + text.substr(dot);
    }
    return text;
  }

  // A module named by an alias node or `__MODULE__`, if the node is one.
  std::optional<std::string> module_name(const Node& node, const Context& ctx) const
  {
    if (node.type() == "alias") {
      return resolve(node.text(), ctx);
    }
    if (node.type() == "identifier" && node.text() == "__MODULE__") {
      return ctx.module;
    }
    if (node.type() == "dot") {
      // __MODULE__.Child
      auto left = node.field("left");
      auto right = node.field("right");
      if (left && right && left.type() == "identifier" && left.text() == "__MODULE__" &&
          right.type() == "alias") {
        return ctx.module + "." + std::string(right.text());
      }
    }
    return std::nullopt;
  }

  void reference(const std::string& module, const Context& ctx)
  {
    if (module.empty()) {
      return;
    }
    switch (ctx.zone) {
    case Zone::module_body:
      m_facts.compile_refs.insert(module);
      break;
    case Zone::runtime:
    case Zone::typespec:
      m_facts.runtime_refs.insert(module);
      break;
    }
  }

  void collect_strings(const Node& node, const Context& ctx)
  {
    bool any = false;
    syntax::walk(node, [&](const Node& n) {
      if (n.type() == "quoted_content") {
        m_facts.reads.insert(std::string(n.text()));
        any = true;
      }
      return true;
    });
    // A read in a function body only matters when that function runs at
    // compile time; Mix does not track those either.
    if (!any && ctx.zone == Zone::module_body) {
      m_facts.reads_unknown = true;
    }
  }

  void add_alias(const std::vector<Node>& args, const Context& ctx)
  {
    if (args.empty()) {
      return;
    }
    const auto& target = args.front();
    auto as = keyword_value(args, "as");
    if (target.type() == "dot" && target.field("right") && target.field("right").type() == "tuple") {
      auto base = module_name(target.field("left"), ctx);
      if (!base) {
        return;
      }
      for (const auto& item : target.field("right").named_children()) {
        if (item.type() == "alias") {
          std::string full = *base + "." + std::string(item.text());
          auto last = full.substr(full.rfind('.') + 1);
          (*ctx.aliases)[last] = full;
        }
      }
      return;
    }
    auto full = module_name(target, ctx);
    if (!full) {
      return;
    }
    if (as && as.type() == "alias") {
      (*ctx.aliases)[std::string(as.text())] = *full;
    } else {
      (*ctx.aliases)[full->substr(full->rfind('.') + 1)] = *full;
    }
  }

  static std::string function_key(std::string_view kind, const Node& head)
  {
    Node h = head;
    if (h.type() == "binary_operator") { // f(x) when guard
      h = h.field("left");
    }
    std::string name;
    std::size_t arity = 0;
    if (h && h.type() == "call") {
      auto target = h.field("target");
      name = target ? std::string(target.text()) : "?";
      arity = arguments_of(h).size();
    } else if (h && h.type() == "identifier") {
      name = std::string(h.text());
    } else if (h) {
      name = std::string(h.type()); // operators and the like
    }
    return std::string(kind) + " " + name + "/" + std::to_string(arity);
  }

  void visit(const Node& node, const Context& ctx)
  {
    auto type = node.type();
    if (type == "alias") {
      reference(resolve(node.text(), ctx), ctx);
      return;
    }
    if (type == "map") {
      auto st = node.first_child_of_type("struct");
      if (st) {
        auto name = st.named_child_count() > 0 ? module_name(st.named_child(0), ctx) : std::nullopt;
        if (name) {
          if (ctx.zone == Zone::typespec) {
            m_facts.runtime_refs.insert(*name);
          } else {
            m_facts.export_refs.insert(*name);
          }
        }
        auto content = node.first_child_of_type("map_content");
        if (content) {
          m_stack.push_back({content, ctx});
        }
        return;
      }
    }
    if (type == "unary_operator" && node.field("operator") && node.field("operator").text() == "@") {
      auto operand = node.field("operand");
      if (operand && operand.type() == "call" && operand.field("target") &&
          operand.field("target").type() == "identifier") {
        auto attr = operand.field("target").text();
        if (attr == "doc" || attr == "moduledoc" || attr == "typedoc" || attr == "impl") {
          return;
        }
        if (attr == "external_resource") {
          collect_strings(operand, ctx);
          return;
        }
        if (attr == "behaviour") {
          for (const auto& arg : arguments_of(operand)) {
            if (auto name = module_name(arg, ctx)) {
              m_facts.compile_refs.insert(*name);
            }
          }
          return;
        }
        if (attr == "spec" || attr == "type" || attr == "typep" || attr == "opaque" ||
            attr == "callback" || attr == "macrocallback") {
          Context inner = ctx;
          inner.zone = Zone::typespec;
          push_children(operand, inner);
          return;
        }
      }
    }
    if (type == "call") {
      visit_call(node, ctx);
      return;
    }
    push_children(node, ctx);
  }

  void visit_call(const Node& node, const Context& ctx)
  {
    auto target = node.field("target");
    if (!target) {
      push_children(node, ctx);
      return;
    }
    auto args = arguments_of(node);
    if (target.type() == "dot") {
      visit_dot_call(node, target, args, ctx);
      return;
    }
    if (target.type() != "identifier") {
      push_children(node, ctx);
      return;
    }
    auto name = target.text();
    if (name == "defmodule" || name == "defprotocol") {
      auto module = args.empty() ? std::nullopt : module_name(args.front(), ctx);
      if (!module) {
        push_children(node, ctx);
        return;
      }
      std::string full = *module;
      if (!ctx.module.empty() && args.front().type() == "alias" &&
          !args.front().text().starts_with("Elixir.") && !ctx.aliases->contains(std::string(
                                                             args.front().text().substr(0, args.front().text().find('.'))))) {
        full = ctx.module + "." + std::string(args.front().text());
        auto first = std::string(args.front().text().substr(0, args.front().text().find('.')));
        (*ctx.aliases)[first] = ctx.module + "." + first;
      }
      m_facts.modules.push_back(full);
      Context inner;
      inner.module = full;
      inner.aliases = std::make_shared<std::map<std::string, std::string>>(*ctx.aliases);
      inner.zone = Zone::module_body;
      if (auto block = do_block_of(node)) {
        m_stack.push_back({block, inner});
      }
      for (std::size_t i = 1; i < args.size(); ++i) {
        m_stack.push_back({args[i], inner});
      }
      return;
    }
    if (name == "defimpl") {
      std::optional<std::string> protocol = args.empty() ? std::nullopt : module_name(args.front(), ctx);
      std::vector<std::string> fors;
      auto for_value = keyword_value(args, "for");
      if (for_value && for_value.type() == "list") {
        for (const auto& item : for_value.named_children()) {
          if (auto m = module_name(item, ctx)) fors.push_back(*m);
        }
      } else if (for_value) {
        if (auto m = module_name(for_value, ctx)) fors.push_back(*m);
      } else if (!ctx.module.empty()) {
        fors.push_back(ctx.module);
      }
      if (protocol) {
        m_facts.compile_refs.insert(*protocol);
        for (const auto& f : fors) {
          m_facts.modules.push_back(*protocol + "." + f);
          m_facts.runtime_refs.insert(f);
        }
      }
      Context inner;
      inner.module = protocol && !fors.empty() ? *protocol + "." + fors.front() : ctx.module;
      inner.aliases = std::make_shared<std::map<std::string, std::string>>(*ctx.aliases);
      inner.zone = Zone::module_body;
      if (auto block = do_block_of(node)) {
        m_stack.push_back({block, inner});
      }
      return;
    }
    if (name == "def" || name == "defp" || name == "defmacro" || name == "defmacrop" ||
        name == "defguard" || name == "defguardp" || name == "defdelegate") {
      if (!args.empty()) {
        auto key = function_key(name, args.front());
        auto& digest = m_facts.functions[key];
        digest = util::sha256_hex(digest + normalized(node));
      }
      Context inner = ctx;
      if (inner.zone == Zone::module_body) {
        inner.zone = Zone::runtime;
      }
      push_children(node, inner);
      return;
    }
    if (name == "alias") {
      add_alias(args, ctx);
      return;
    }
    if (name == "require" || name == "use" || name == "import") {
      if (!args.empty()) {
        if (auto module = module_name(args.front(), ctx)) {
          if (name == "import") {
            m_facts.imports.insert(*module);
          } else {
            m_facts.compile_refs.insert(*module);
          }
          if (name == "require" && keyword_value(args, "as")) {
            add_alias(args, ctx);
          }
        }
        Context inner = ctx;
        inner.zone = name == "use" ? Zone::module_body : ctx.zone;
        for (std::size_t i = 1; i < args.size(); ++i) {
          m_stack.push_back({args[i], inner});
        }
      }
      return;
    }
    if (name == "defstruct" || name == "defexception") {
      auto& digest = m_facts.structs[ctx.module];
      digest = util::sha256_hex(digest + normalized(node));
    }
    if (name == "apply" && !args.empty() && !module_name(args.front(), ctx) &&
        args.front().type() != "atom" && ctx.zone == Zone::module_body) {
      m_facts.dynamic_compile = true;
    }
    push_children(node, ctx);
  }

  void visit_dot_call(const Node& node, const Node& target, const std::vector<Node>& args,
                      const Context& ctx)
  {
    auto left = target.field("left");
    auto right = target.field("right");
    bool has_args = static_cast<bool>(node.first_child_of_type("arguments"));
    if (left) {
      auto module = module_name(left, ctx);
      if (module) {
        reference(*module, ctx);
        auto fun = right ? right.text() : std::string_view{};
        if (*module == "File" || *module == "Path") {
          if (fun.starts_with("read") || fun.starts_with("stream") || fun.starts_with("open") ||
              fun == "wildcard" || fun.starts_with("ls") || fun.starts_with("exists") ||
              fun.starts_with("stat") || fun.starts_with("regular") || fun.starts_with("dir")) {
            for (const auto& arg : args) collect_strings(arg, ctx);
            if (args.empty() && ctx.zone == Zone::module_body) m_facts.reads_unknown = true;
          }
        }
      } else if (left.type() == "atom" && left.text() == ":file") {
        for (const auto& arg : args) collect_strings(arg, ctx);
      } else if (left.type() != "atom") {
        if (has_args && ctx.zone == Zone::module_body &&
            (left.type() == "identifier" || left.type() == "call")) {
          m_facts.dynamic_compile = true;
        }
        m_stack.push_back({left, ctx});
      }
    }
    for (auto it = args.rbegin(); it != args.rend(); ++it) {
      m_stack.push_back({*it, ctx});
    }
    if (auto block = do_block_of(node)) {
      m_stack.push_back({block, ctx});
    }
  }

  SourceFacts& m_facts;
  std::vector<Frame> m_stack;
};

} // namespace

SourceFacts analyze_elixir(std::string_view source)
{
  SourceFacts facts;
  auto tree = syntax::Tree::parse(std::string(source));
  if (!tree) {
    facts.parse_error = true;
    facts.ast_digest = util::sha256_hex(source);
    return facts;
  }
  facts.parse_error = tree->has_errors();
  facts.ast_digest = util::sha256_hex(normalized(tree->root()));
  Analyzer(facts).run(tree->root());
  // A module never depends on itself.
  for (const auto& module : facts.modules) {
    facts.compile_refs.erase(module);
    facts.export_refs.erase(module);
    facts.runtime_refs.erase(module);
    facts.imports.erase(module);
  }
  return facts;
}

} // namespace sandbox::incremental
