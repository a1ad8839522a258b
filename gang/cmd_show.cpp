// gang show TARGET [--arch ARCH] [--json] [--strict] [--definitions DIR]
//
// Loads the definitions, resolves TARGET for ARCH and prints the build order
// with each component's kind, cache key (or "pending") and cache state, then
// totals. Works offline and without sources. Two seams are left for the
// coordinator to wire: the SourceResolver (for now UnresolvedSources: every
// chunk with a repo is pending) and the cache-state function (for now
// "missing" for every known key).
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "definitions/arch.hpp"
#include "definitions/build_graph.hpp"
#include "definitions/cache_key.hpp"
#include "definitions/definitions.hpp"
#include "definitions/source_resolver.hpp"
#include "gang/commands.hpp"
#include "gang/config.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

// The state of a known cache key in the artifact cache ("cached", "missing").
// Pending keys are reported as "pending" without asking.
using CacheStateFn = std::function<std::string(const std::string& key)>;

CacheStateFn make_cache_state(const Config&) {
  return [](const std::string&) { return std::string("missing"); };
}

std::unique_ptr<SourceResolver> make_source_resolver(const Config&) {
  return std::make_unique<UnresolvedSources>();
}

struct ShowOptions {
  std::string target;
  std::string arch;
  std::string definitions;
  bool json = false;
  bool strict = false;
};

void print_error(const Error& e) {
  std::fprintf(stderr, "gang: error: %s\n", e.to_string().c_str());
}

// The definitions root: the directory holding VERSION above the target file,
// else --definitions, else the current directory. `target` is rewritten to
// be relative to the root when it is a path to an existing file.
std::string find_root(ShowOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target(options.target);
  if (options.target.find('/') != std::string::npos || options.target.ends_with(".morph")) {
    if (fs::is_regular_file(target, ec)) {
      fs::path file = fs::absolute(target, ec).lexically_normal();
      for (fs::path dir = file.parent_path(); !dir.empty(); dir = dir.parent_path()) {
        if (fs::exists(dir / "VERSION", ec)) {
          options.target = file.lexically_relative(dir).generic_string();
          return dir.string();
        }
        if (dir == dir.root_path()) break;
      }
    }
  }
  if (!options.definitions.empty()) return options.definitions;
  return ".";
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string render_json(const BuildGraph& graph, const std::vector<std::string>& states) {
  std::string out;
  out.reserve(graph.components.size() * 200);
  out += "{\"target\": ";
  json_string(out, graph.target);
  out += ", \"arch\": ";
  json_string(out, graph.arch);
  out += ", \"components\": [";
  for (std::size_t i = 0; i < graph.components.size(); ++i) {
    const Component& c = graph.components[i];
    out += i == 0 ? "\n  " : ",\n  ";
    out += "{\"name\": ";
    json_string(out, c.name);
    out += ", \"kind\": ";
    json_string(out, to_string(c.kind));
    out += ", \"stratum\": ";
    if (c.kind == Kind::chunk)
      json_string(out, c.stratum);
    else
      out += "null";
    out += ", \"key\": ";
    if (c.cache_key)
      json_string(out, *c.cache_key);
    else
      out += "null";
    out += ", \"state\": ";
    json_string(out, states[i]);
    out += ", \"build_depends\": [";
    for (std::size_t d = 0; d < c.depends.size(); ++d) {
      if (d != 0) out += ", ";
      json_string(out, graph.components[c.depends[d]].name);
    }
    out += "]}";
  }
  auto totals = graph.totals();
  out += "\n], \"totals\": {\"chunks\": " + std::to_string(totals.chunks) +
         ", \"strata\": " + std::to_string(totals.strata) +
         ", \"systems\": " + std::to_string(totals.systems) + "}}\n";
  return out;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string render_text(const BuildGraph& graph, const std::vector<std::string>& states) {
  std::string out;
  out.reserve(graph.components.size() * 120);
  out += "target " + graph.target + " for " + graph.arch + ", build order:\n";
  for (std::size_t i = 0; i < graph.components.size(); ++i) {
    const Component& c = graph.components[i];
    char head[32];
    std::snprintf(head, sizeof head, "%5zu  %-8s ", i + 1, std::string(to_string(c.kind)).c_str());
    out += head;
    std::string name = c.kind == Kind::chunk ? c.stratum + "/" + c.name : c.name;
    out += name;
    if (name.size() < 32) out.append(32 - name.size(), ' ');
    out += ' ';
    out += c.cache_key ? *c.cache_key : std::string("pending");
    out += "  ";
    out += states[i];
    out += '\n';
  }
  auto t = graph.totals();
  out += "totals: " + plural(t.chunks, "chunk", "chunks") + ", " +
         plural(t.strata, "stratum", "strata") + ", " + plural(t.systems, "system", "systems");
  if (t.clusters > 0) out += ", " + plural(t.clusters, "cluster", "clusters");
  out += '\n';
  return out;
}

int run_show(ShowOptions options) {
  std::string root = find_root(options);
  auto config = load_config(root);
  if (!config) {
    print_error(config.error());
    return 1;
  }
  if (options.arch.empty()) options.arch = config->arch.empty() ? host_arch() : config->arch;
  LoadOptions load_options;
  load_options.unknown_fields =
      options.strict || config->strict ? Strictness::strict : Strictness::warn;
  auto defs = load_definitions(root, load_options);
  if (!defs) {
    print_error(defs.error());
    return 1;
  }
  for (const auto& w : defs->warnings)
    std::fprintf(stderr, "gang: warning: %s\n", w.to_string().c_str());
  auto graph = resolve_graph(*defs, options.target, options.arch);
  if (!graph) {
    print_error(graph.error());
    return 1;
  }
  auto resolver = make_source_resolver(*config);
  if (auto r = compute_keys(*graph, *resolver); !r) {
    print_error(r.error());
    return 1;
  }
  CacheStateFn cache_state = make_cache_state(*config);
  std::vector<std::string> states;
  states.reserve(graph->components.size());
  for (const auto& c : graph->components)
    states.push_back(c.cache_key ? cache_state(*c.cache_key) : std::string("pending"));
  std::string out = options.json ? render_json(*graph, states) : render_text(*graph, states);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int cmd_show(const Args& args) {
  cxxopts::Options parser("gang show",
                          "Print what would be built for TARGET, in build order, with cache keys "
                          "and cache states.");
  ShowOptions options;
  parser.add_options()(
      "arch", "architecture to resolve for (default: gang.conf, GANG_ARCH, else the host's)",
      cxxopts::value<std::string>(options.arch))("json", "print one JSON object",
                                                 cxxopts::value<bool>(options.json))(
      "strict", "unknown definition fields are errors", cxxopts::value<bool>(options.strict))(
      "definitions", "definitions root (default: found from TARGET, else .)",
      cxxopts::value<std::string>(options.definitions))("h,help", "print this help")(
      "target", "a morph path or a definition name", cxxopts::value<std::string>(options.target));
  parser.parse_positional({"target"});
  parser.positional_help("TARGET");
  std::vector<const char*> argv{"gang show"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    auto result = parser.parse(static_cast<int>(argv.size()), argv.data());
    if (result.count("help") != 0) {
      std::fputs(parser.help().c_str(), stdout);
      return 0;
    }
    if (!result.unmatched().empty()) {
      std::fprintf(stderr, "gang: error: unexpected argument %s\n", result.unmatched()[0].c_str());
      return 2;
    }
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "gang: error: %s\n", e.what());
    return 2;
  }
  if (options.target.empty()) {
    std::fputs("gang: error: show needs a TARGET (a morph path or a definition name)\n", stderr);
    return 2;
  }
  return run_show(std::move(options));
}

}  // namespace gang
