// staging_layers.hpp: how a chunk's staged dependencies become overlay
// layers. Each layer is one cached tree (cache/tree_cache.hpp) of one or
// more artifacts merged in staging order; the sandbox stacks the layers
// with the last group on top, so a build sees exactly what staging the
// dependencies one after the other into one directory gave it.
//
// Grouping keeps lookups cheap (a name missing from a directory that N
// layers share costs a few microseconds per layer on a fresh mount:
// scripts/bench-staging) and the mount within the kernel's limits (500
// lower layers, one page of options): the whole strata a chunk's stratum
// build-depends on (always the first dependencies in staging order) are
// one group, the same tree for every chunk of that stratum; other
// dependencies are one group each; and while there are more than
// max_layers groups, the two adjacent groups with the fewest artifacts
// between them are merged.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "definitions/build_graph.hpp"

namespace gang {

inline constexpr std::size_t k_max_staging_layers = 8;

// `stage`: staging_set(graph, chunk), in staging order. Returns the groups
// in the same order (concatenated, they are `stage`).
[[nodiscard]] std::vector<std::vector<std::size_t>> layer_groups(
    const BuildGraph& graph, const std::vector<std::size_t>& stage,
    std::size_t max_layers = k_max_staging_layers);

}  // namespace gang
