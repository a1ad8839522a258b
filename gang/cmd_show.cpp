// gang show TARGET [--arch ARCH] [--base BASE] [--json] [--strict] [--definitions DIR]
//
// Loads the definitions, resolves TARGET for ARCH and prints the build order
// with each component's kind, cache key (or "pending") and cache state, then
// totals. Works offline and without sources: keys come from the local git
// mirrors only (never fetched), and a source not mirrored yet, or one that
// cannot be resolved (an unknown alias, a bad ref), leaves its key pending,
// shown with the reason; show still succeeds.
#include <algorithm>
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
#include "cache/artifact_cache.hpp"
#include "gang/project.hpp"
#include "gang/cli.hpp"
#include "gang/json_text.hpp"
#include "gang/commands.hpp"
#include "gang/config.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

struct ShowOptions {
  std::string target;
  std::string arch;
  std::string definitions;
  std::string cache;
  std::string base;
  bool json = false;
  bool strict = false;
};

void print_error(const Error& e) { std::fprintf(stderr, "gang: error: %s\n", e.to_string().c_str()); }

// A component's state in the artifact cache: cached, failed, building (a
// live claim), missing; "pending" when its key is not known yet. Without a
// cache index every known key is "missing": show never creates a cache.
class CacheStates {
 public:
  explicit CacheStates(const std::string& cache_dir) {
    if (path_exists(cache_dir + "/index")) {
      auto opened = ArtifactCache::open(cache_dir);
      if (opened) {
        m_cache.emplace(std::move(*opened));
      } else {
        m_error = opened.error();
      }
    }
  }
  // Why the cache could not be opened (e.g. a damaged index), if so: states
  // would then all read "missing", which would be a lie.
  [[nodiscard]] const std::optional<Error>& error() const { return m_error; }
  std::string operator()(const std::optional<std::string>& key) {
    if (!key) return "pending";
    if (!m_cache) return "missing";
    if (m_cache->contains(*key)) return "cached";
    if (auto failed = m_cache->failures().of(*key); failed && *failed) return "failed";
    if (auto claim = m_cache->claims().claim_of(*key); claim && *claim) return "building";
    return "missing";
  }

 private:
  std::optional<ArtifactCache> m_cache;
  std::optional<Error> m_error;
};

// Every source fails with one error (the git mirrors could not be opened).
class FailingSources final : public SourceResolver {
 public:
  explicit FailingSources(Error error) : m_error(std::move(error)) {}
  [[nodiscard]] Result<std::optional<ResolvedSource>> resolve(const std::string&,
                                                              const std::string&) override {
    return std::unexpected(m_error);
  }

 private:
  Error m_error;
};

std::string render_json(const BuildGraph& graph, const std::vector<std::string>& states) {
  std::string out;
  out.reserve(graph.components.size() * 200);
  out += "{\"target\": ";
  append_json_string(out, graph.target);
  out += ", \"arch\": ";
  append_json_string(out, graph.arch);
  out += ", \"components\": [";
  for (std::size_t i = 0; i < graph.components.size(); ++i) {
    const Component& c = graph.components[i];
    out += i == 0 ? "\n  " : ",\n  ";
    out += "{\"name\": ";
    append_json_string(out, c.name);

    out += ", \"kind\": ";
    append_json_string(out, to_string(c.kind));
    out += ", \"stratum\": ";
    if (c.kind == Kind::chunk)
      append_json_string(out, c.stratum);
    else
      out += "null";
    out += ", \"key\": ";
    if (c.cache_key)
      append_json_string(out, *c.cache_key);
    else
      out += "null";
    out += ", \"state\": ";
    append_json_string(out, states[i]);

    out += ", \"build_depends\": [";
    for (std::size_t d = 0; d < c.depends.size(); ++d) {
      if (d != 0) out += ", ";
      append_json_string(out, graph.components[c.depends[d]].id);
    }
    out += "], \"id\": ";
    append_json_string(out, c.id);
    if (!c.cache_key) {
      out += ", \"pending_reason\": ";
      append_json_string(out, c.pending_reason);
    }
    out += '}';
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
  auto shown_name = [](const Component& c) {
    return c.kind == Kind::chunk ? c.stratum + "/" + c.name : c.name;
  };
  std::size_t width = 32;  // the name column fits the longest name
  for (const Component& c : graph.components) width = std::max(width, shown_name(c).size());
  for (std::size_t i = 0; i < graph.components.size(); ++i) {
    const Component& c = graph.components[i];
    char head[32];
    std::snprintf(head, sizeof head, "%5zu  %-8s ", i + 1, std::string(to_string(c.kind)).c_str());
    out += head;
    std::string name = shown_name(c);
    out += name;
    out.append(width - name.size(), ' ');
    out += ' ';
    out += c.cache_key ? *c.cache_key : std::string("pending");
    out += "  ";
    out += states[i];
    if (!c.cache_key && !c.pending_reason.empty()) {
      out += "  (";
      out += c.pending_reason;
      out += ')';
    }
    out += '\n';
  }
  auto t = graph.totals();
  out += "totals: " + plural(t.chunks, "chunk", "chunks") + ", " +
         plural(t.strata, "stratum", "strata") + ", " + plural(t.systems, "system", "systems");
  if (t.clusters > 0) out += ", " + plural(t.clusters, "cluster", "clusters");
  out += '\n';
  return out;
}

int run_show(const ShowOptions& options) {
  ProjectOptions project_options;
  project_options.target = options.target;
  project_options.definitions = options.definitions;
  project_options.arch = options.arch;
  project_options.cache_dir = options.cache;
  project_options.strict = options.strict;
  project_options.base = options.base;
  auto project = load_project(project_options, [](const Error& w) {
    std::fprintf(stderr, "gang: warning: %s\n", w.to_string().c_str());
  });
  if (!project) {
    print_error(project.error());
    return 1;
  }
  // A source that cannot be resolved never fails show: its key is pending,
  // with the reason.
  std::unique_ptr<GitMirrors> git;
  std::unique_ptr<SourceResolver> resolver = std::make_unique<UnresolvedSources>();
  if (path_exists(project->config.cache_dir + "/gits")) {
    auto opened = open_git_mirrors(*project);
    if (opened) {
      git = std::make_unique<GitMirrors>(std::move(*opened));
      resolver = std::make_unique<GitSourceResolver>(*git, GitSourceResolver::Mode::local_only);
    } else {
      resolver = std::make_unique<FailingSources>(opened.error());
    }
  }
  if (auto r = compute_keys(project->graph, *resolver, SourceErrors::pending); !r) {
    print_error(r.error());
    return 1;
  }
  CacheStates cache_state(project->config.cache_dir);
  if (cache_state.error()) {
    print_error(*cache_state.error());
    return 1;
  }
  std::vector<std::string> states;
  states.reserve(project->graph.components.size());
  for (const auto& c : project->graph.components) states.push_back(cache_state(c.cache_key));
  std::string out = options.json ? render_json(project->graph, states)
                                 : render_text(project->graph, states);
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
      cxxopts::value<std::string>(options.definitions))(
      "cache", "artifact cache directory (cache states and git mirrors)",
      cxxopts::value<std::string>(options.cache))(
      "base", "sandbox base the keys are for: host, none, or a sysroot directory",
      cxxopts::value<std::string>(options.base))("h,help", "print this help")(
      "target", "a morph path or a definition name", cxxopts::value<std::string>(options.target));
  parser.parse_positional({"target"});
  parser.positional_help("TARGET");
  if (auto result = parse_options(parser, args); !result) return result.error();
  if (options.target.empty()) {
    std::fputs("gang: error: show needs a TARGET (a morph path or a definition name)\n", stderr);
    return 2;
  }
  return run_show(options);
}

}  // namespace gang
