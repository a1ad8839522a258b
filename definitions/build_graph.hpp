// build_graph.hpp: a target resolved, for one arch, into the components to
// build in build order (every component after all of its dependencies).
//
// Chunks carry their effective build steps (DEFAULTS filled in), build-mode,
// prefix, source coordinates and the set of components to stage for their
// build. Systems of another arch than the requested one are skipped when
// reached through a cluster; naming one directly is an error. Reaching a
// broken definition (Definitions::broken) fails with its error.
//
// Staging rule (ybd's): a chunk stages the transitive closure of its own
// build-depends within its stratum, whatever their build-mode, plus every
// chunk of every stratum its stratum build-depends on, transitively, except
// bootstrap-mode chunks of those strata.
//
// A BuildGraph points into the Definitions it was resolved from (the *_def
// pointers); it must not outlive them. Concurrency: a plain value; read-only
// sharing is safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "definitions/definitions.hpp"
#include "definitions/source_resolver.hpp"
#include "util/error.hpp"

namespace gang {

struct SystemMember {
  std::size_t component = 0;                          // a stratum component
  std::optional<std::vector<std::string>> artifacts;  // nullopt: all of its artifacts
};

struct Component {
  std::string name;     // the definition's name (DESTDIR /NAME.inst, baserock/NAME.meta)
  Kind kind = Kind::chunk;
  std::string stratum;  // chunks: the stratum that builds them
  // How logs, events and `gang shell` name the component: unique among the
  // graph's components of its kind. The name, except for an inline or chunk
  // file entry whose name another chunk of the graph shares: "STRATUM/NAME"
  // (two strata may each build a chunk called libwnck).
  std::string id;
  std::string path;     // the morph file (the stratum's file for inline chunks)

  // Direct dependencies, as indices of earlier components. A chunk depends on
  // its in-stratum build-depends and on the strata its stratum build-depends
  // on; a stratum on its chunks and its build-depends strata; a system on its
  // strata; a cluster on its systems.
  std::vector<std::size_t> depends;

  // Chunks only.
  BuildSteps steps;  // all 18, in k_step_names order, after DEFAULTS fill-in
  BuildMode build_mode = BuildMode::staging;
  std::string prefix;
  std::string repo;  // as written; empty: built without a source checkout
  std::string ref;
  std::string unpetrify_ref;
  std::map<std::string, std::string> submodules;  // path -> url
  std::optional<int> max_jobs;

  std::vector<std::size_t> chunks;   // strata: member chunks
  std::vector<SystemMember> strata;  // systems: member strata with filters

  // The definition this component comes from (exactly one is set).
  const ChunkDef* chunk_def = nullptr;
  const StratumDef* stratum_def = nullptr;
  const SystemDef* system_def = nullptr;
  const ClusterDef* cluster_def = nullptr;

  // Filled by compute_keys (cache_key.hpp). cache_key is "name.<sha256 hex>",
  // or nullopt while pending (a source not yet resolved here or in a
  // dependency). source is the chunk's resolved repo/ref, when resolved.
  std::optional<std::string> cache_key;
  std::optional<ResolvedSource> source;
  // While pending: why (the source is not fetched yet, the resolver's
  // error, or "waits for KIND ID", the pending component it waits for).
  std::string pending_reason;
};

// What the builds run on (the sandbox base), as it enters every cache key:
// an artifact built on one base is never reused on another.
struct BaseIdentity {
  std::string kind = "none";  // "host", "none" or "sysroot"
  std::string identity;       // host: OS, compiler and libc versions; sysroot: content hash
};

struct BuildGraph {
  std::string target;  // the morph path the target resolved to
  std::string arch;
  std::vector<Component> components;  // build order
  std::size_t target_index = 0;       // the target itself (the last component)
  const SplitRules* split_rules = nullptr;  // DEFAULTS split-rules (points into the Definitions)
  BaseIdentity base;                  // set before compute_keys (gang/base_identity.hpp)

  struct Totals {
    std::size_t chunks = 0, strata = 0, systems = 0, clusters = 0;
  };
  [[nodiscard]] Totals totals() const;
};

// A target found in the definitions: a morph path (a stratum, system or
// cluster file, or a chunk file used by exactly one stratum), a chunk as
// STRATUM/NAME (the stratum's name or its path without ".morph", as ybd
// writes it: "xfce/libwnck", "strata/xfce/libwnck"), or a bare name.
struct TargetRef {
  Kind kind = Kind::chunk;
  std::size_t index = 0;        // into strata, systems or clusters; for chunks the stratum
  std::size_t chunk_index = 0;  // chunks: index into that stratum's chunks
};

// The components to stage for building chunk `component`, in build order,
// by the staging rule above; empty for other kinds. Computed on demand (the
// sets overlap heavily, so the graph does not store them).
[[nodiscard]] std::vector<std::size_t> staging_set(const BuildGraph& graph, std::size_t component);

// Finds `target`: a path relative to the root (an absolute path or one
// starting with the root is made relative), STRATUM/NAME, or a bare
// definition name. A bare name must be unique; otherwise the error lists
// the candidates, chunks as STRATUM/NAME.
[[nodiscard]] Result<TargetRef> find_target(const Definitions& defs, const std::string& target);

// Resolves `target` for `arch` into a BuildGraph (see find_target). A
// cluster includes every system it lists for `arch`, subsystems included,
// at any depth. Two strata may each build a chunk of one name: they are two
// components (see Component::id); two strata, systems or clusters of one
// name in one build are an error.
[[nodiscard]] Result<BuildGraph> resolve_graph(const Definitions& defs, const std::string& target,
                                               const std::string& arch);

}  // namespace gang
