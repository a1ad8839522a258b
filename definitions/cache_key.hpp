// cache_key.hpp: cache keys for the components of a BuildGraph.
//
// A key is "<name>.<sha256 hex>" of a canonical serialisation of everything
// that affects a component's artifact; definitions/cache_key.md documents
// the recipe field by field. Same inputs give the same key on any machine;
// a change in any dependency changes every dependant's key; descriptions,
// YAML key order, repo URLs and ref spellings do not matter (the source tree
// id does). Until a source is resolved the key is pending, and pending
// propagates to dependants.
//
// Concurrency: compute_keys mutates the graph and must not race with readers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "definitions/build_graph.hpp"
#include "definitions/source_resolver.hpp"
#include "util/error.hpp"

namespace gang {

// Bumped whenever gang changes how it builds or packs artifacts, so that old
// artifacts are not reused.
inline constexpr int k_artifact_version = 2;

// What compute_keys does when the resolver fails for a source (an unknown
// repo alias, a bad ref, a corrupt mirror): fail (a build needs the source)
// or leave the key pending with the error as its reason (gang show).
enum class SourceErrors { fail, pending };

// Fills cache_key (and source, for chunks with a repo) of every component,
// in build order, asking `resolver` at most once per distinct (repo, ref).
// Sources the resolver does not know yet leave keys pending, with a
// pending_reason on each pending component. With SourceErrors::fail, fails
// on the first resolver error; with ::pending, never fails.
[[nodiscard]] Result<void> compute_keys(BuildGraph& graph, SourceResolver& resolver,
                                        SourceErrors errors = SourceErrors::fail);

// The canonical text hashed for component `index`, or nullopt while the
// component is pending. Requires the keys of its dependencies (call after
// compute_keys, or in build order). For debugging and tests.
[[nodiscard]] std::optional<std::string> cache_key_input(const BuildGraph& graph,
                                                         std::size_t index);

}  // namespace gang
