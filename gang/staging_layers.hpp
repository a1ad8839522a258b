// staging_layers.hpp: how a chunk's staged dependencies become overlay
// layers. Each layer is one cached tree (cache/tree_cache.hpp) of one or
// more artifacts merged in staging order; the sandbox stacks the layers
// with the last group on top, so a build sees exactly what staging the
// dependencies one after the other into one directory gave it.
//
// Grouping keeps lookups cheap (a name missing from a directory that N
// layers share costs about 0.65 us x N on a fresh mount) and the mount
// within the kernel's limits (500 lower layers, one page of options): a
// whole stratum staged as a build-depends is one group (the same tree for
// every chunk that build-depends on that stratum); other dependencies are
// one group each; and while there are more than max_layers groups, the two
// adjacent groups with the fewest artifacts between them are merged.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "definitions/build_graph.hpp"

namespace gang {

inline constexpr std::size_t k_max_staging_layers = 24;

// `stage`: staging_set(graph, chunk), in staging order. Returns the groups
// in the same order (concatenated, they are `stage`).
[[nodiscard]] std::vector<std::vector<std::size_t>> layer_groups(
    const BuildGraph& graph, const std::vector<std::size_t>& stage,
    std::size_t max_layers = k_max_staging_layers);

}  // namespace gang
