// project.hpp: what every subcommand that takes a TARGET does first: find the
// definitions root, load the configuration and the definitions, and resolve
// the target into a build graph for an arch. Also the adapter that lets the
// definitions' cache keys see git (GitSourceResolver).
//
// Concurrency: plain values, built once per process.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "cache/git_mirrors.hpp"
#include "definitions/build_graph.hpp"
#include "definitions/definitions.hpp"
#include "definitions/source_resolver.hpp"
#include "gang/config.hpp"
#include "util/error.hpp"

namespace gang {

struct ProjectOptions {
  std::string target;       // a morph path (absolute, or relative to cwd or root) or a bare name
  std::string definitions;  // --definitions; empty: found from target, else "."
  std::string arch;         // --arch; empty: config, else the host's
  std::string cache_dir;    // --cache; empty: config
  std::string base;         // --base; empty: config
  bool strict = false;      // --strict
};

struct Project {
  std::string root;    // the definitions root
  std::string target;  // relative to root, or a bare name
  Config config;       // with the command-line overrides applied
  std::unique_ptr<Definitions> defs;  // heap-allocated: graph points into it
  BuildGraph graph;    // keys not yet computed; graph.base identifies config.base
};

// Finds the root: the directory holding VERSION above a target file, else
// `definitions`, else ".". Rewrites `target` relative to the root when it
// names an existing file.
[[nodiscard]] std::string find_definitions_root(std::string& target,
                                                const std::string& definitions);

// Loads config, definitions and the graph, and identifies the sandbox base
// for the keys (base_identity.hpp). Definition warnings go to `warn`.
[[nodiscard]] Result<Project> load_project(const ProjectOptions& options,
                                           const std::function<void(const Error&)>& warn);

// Resolves sources through the git mirrors, in one of three modes:
//   local_only: never fetches; unknown refs stay pending (gang show);
//   fetch:      fetches only refs missing from the mirror (workers);
//   refresh:    also fetches each repo once whose ref is a branch or tag,
//               so a build follows the branch's tip (the frontend, once per
//               gang, before starting the workers). Offline never fetches.
class GitSourceResolver final : public SourceResolver {
 public:
  enum class Mode { local_only, fetch, refresh };
  GitSourceResolver(const GitMirrors& git, Mode mode) : m_git(git), m_mode(mode) {}
  [[nodiscard]] Result<std::optional<ResolvedSource>> resolve(const std::string& repo,
                                                              const std::string& ref) override;

 private:
  const GitMirrors& m_git;
  Mode m_mode;
  std::set<std::string> m_refreshed;  // repos fetched by this resolver
};

// Opens the git mirrors for a project (aliases from config, anchored at root).
[[nodiscard]] Result<GitMirrors> open_git_mirrors(const Project& project);

}  // namespace gang
