// definitions.hpp: the definitions tree as plain values, and its loader.
//
// load_definitions() reads VERSION (7, 8 or 9), DEFAULTS (build-systems and
// split-rules) and every *.morph file under the root, once each, and checks
// everything that can be checked without a target: field types, unknown
// fields (warnings, or errors when strict), references to morph files,
// chunk build-depends, dependency cycles and duplicate names, and that every
// name that becomes a file name (chunk, stratum, system, cluster and artifact
// names) is one safe path component (util/path_name.hpp). Files are read only
// if they are regular files (symlinks to them are fine) of at most 16 MiB,
// and YAML aliases may not expand past a budget (yaml.hpp). Stratum chunk
// entries are merged with their chunk files here (entry fields win), so a
// ChunkDef is the chunk as its stratum builds it. Build steps a chunk leaves
// unset stay unset here; build_graph.hpp fills them from DEFAULTS.
//
// What fails, and when. Real sets hold hundreds of files, and some are
// always broken (a stratum naming a chunk file that was removed, a system
// for a board nobody builds), so one broken file must not stop work on the
// rest. A broken VERSION or DEFAULTS, which everything depends on, fails the
// load. A broken definition (bad YAML, a wrong type, a missing or broken
// file it names, a chunk cycle; with strict, an unknown field) is recorded
// in Definitions::broken and reported as a warning; resolve_graph fails with
// its error when the target needs it (a cluster needs its systems for the
// requested arch, and any system whose arch could not be read). Strata on a
// stratum cycle are broken alike. Duplicate names are warnings: they only
// make bare names ambiguous, and find_target lists the candidates.
//
// Names of files in values and in errors are relative to the root
// ("strata/core.morph"). Concurrency: load_definitions parses files on a few
// threads of its own and joins them before returning; a Definitions is
// immutable after loading and may be read from any number of threads.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/error.hpp"

namespace gang {

enum class Kind { chunk, stratum, system, cluster };
enum class BuildMode { staging, bootstrap, test };

[[nodiscard]] std::string_view to_string(Kind kind);
[[nodiscard]] std::string_view to_string(BuildMode mode);

// The 18 build steps in the order a build runs them:
// {pre-,,post-}{bootstrap,configure,build,test,install,strip}-commands.
inline constexpr std::size_t k_step_count = 18;
extern const std::array<std::string_view, k_step_count> k_step_names;
// Index of a step name in k_step_names, or nullopt.
[[nodiscard]] std::optional<std::size_t> step_index(std::string_view name);

using Commands = std::vector<std::string>;
using BuildSteps = std::array<Commands, k_step_count>;
// Steps as written: nullopt where the definition leaves a step unset.
using OptionalSteps = std::array<std::optional<Commands>, k_step_count>;

struct Location {
  std::string file;  // relative to the definitions root
  int line = 0;
};

struct SplitRule {
  std::string artifact;              // a leading '-' means "<name>-..."
  std::vector<std::string> include;  // regular expressions over whole paths
};

struct SplitRules {
  std::vector<SplitRule> chunk;
  std::vector<SplitRule> stratum;
};

// system-integration: product -> (sort name -> commands).
using SystemIntegration = std::map<std::string, std::map<std::string, Commands>>;

// A chunk as its stratum builds it: the stratum entry merged over the chunk
// file (for `morph:` entries) or the entry alone (inline chunks).
struct ChunkDef {
  std::string name;           // as the stratum entry names it; build-depends use it
  // The component's name (key, artifact, DESTDIR): the chunk file's own name
  // where the entry names a file, else `name`. They differ only where a
  // stratum renames a chunk file (gstreamer-plugins-base@0.10 for the file
  // gstreamer-plugins-base-0.10.morph); ybd names the artifact after the file.
  std::string artifact_name;
  std::string morph;  // chunk file, relative to the root; empty for inline chunks
  std::string repo;   // as written (alias not expanded); empty: no source checkout
  std::string ref;
  std::string unpetrify_ref;
  std::string build_system = "manual";
  BuildMode build_mode = BuildMode::staging;
  std::string prefix = "/usr";
  std::map<std::string, std::string> submodules;  // path -> url
  std::vector<std::string> build_depends;         // names of chunks in the same stratum
  std::map<std::string, std::string> artifacts;   // chunk artifact -> stratum artifact
  std::optional<int> max_jobs;
  OptionalSteps steps;
  std::vector<SplitRule> products;
  SystemIntegration system_integration;
  Location where;  // the stratum's chunk entry
};

struct StratumDef {
  std::string name;
  std::string path;
  std::vector<std::size_t> build_depends;  // indices into Definitions::strata
  std::vector<ChunkDef> chunks;
  std::vector<SplitRule> products;
  Location where;
};

struct SystemStratum {
  std::size_t stratum = 0;                            // index into Definitions::strata
  std::optional<std::vector<std::string>> artifacts;  // nullopt: all artifacts
  Location where;
};

struct SystemDef {
  std::string name;
  std::string path;
  std::string arch;
  std::vector<SystemStratum> strata;
  std::vector<std::string> configuration_extensions;
  Location where;
};

// Deploy parameters may be any YAML value; each is kept as the text a
// deployment extension sees in its environment (deploy_value.hpp).
struct Deployment {
  std::string label;
  std::map<std::string, std::string> settings;  // type, location, UPPERCASE keys...
};

struct ClusterSystem {
  std::size_t system = 0;  // index into Definitions::systems
  std::map<std::string, std::string> deploy_defaults;  // rendered as Deployment::settings
  std::vector<Deployment> deploy;
  std::vector<ClusterSystem> subsystems;
  Location where;
};

struct ClusterDef {
  std::string name;
  std::string path;
  std::vector<ClusterSystem> systems;
  Location where;
};

// A chunk file (kind: chunk) as a morph; its content lives in the ChunkDefs
// of the strata that use it.
struct ChunkFile {
  std::string name;
  std::string path;
};

struct Definitions {
  std::string root;  // as given to load_definitions
  int version = 0;
  std::map<std::string, OptionalSteps> build_systems;  // from DEFAULTS
  SplitRules split_rules;
  std::vector<ChunkFile> chunk_files;
  std::vector<StratumDef> strata;
  std::vector<SystemDef> systems;
  std::vector<ClusterDef> clusters;

  struct Ref {
    Kind kind;
    std::size_t index;  // into chunk_files, strata, systems or clusters
  };
  std::unordered_map<std::string, Ref> by_path;  // morph path -> definition

  // Definitions that failed to load, by path, with their first problem
  // (their own, or that of a broken file they name). A broken stratum,
  // system or cluster is still listed above, possibly half-read; a file
  // whose kind or name could not be read is only here.
  std::unordered_map<std::string, Error> broken;

  // Problems for the caller to print: unknown fields, duplicate names and
  // each broken definition's own problem.
  std::vector<Error> warnings;

  // The problem of the definition at `path`, or nullptr if it loaded.
  [[nodiscard]] const Error* problem(const std::string& path) const;
};

enum class Strictness { warn, strict };

struct LoadOptions {
  Strictness unknown_fields = Strictness::warn;  // strict: unknown fields are errors
};

// Loads the tree at `root`. Fails only if VERSION, DEFAULTS or the listing
// of the tree is broken; broken definitions are recorded (see above). Errors
// carry file, line and (for unknown fields) a did-you-mean suggestion.
[[nodiscard]] Result<Definitions> load_definitions(const std::string& root,
                                                   const LoadOptions& options = {});

}  // namespace gang
