// system_assembler.hpp: publishing the composite components, as ybd does.
//   stratum: baserock/STRATUM.meta groups its chunks' products into the
//            stratum's products (split_stratum: the stratum's `products:`,
//            then DEFAULTS, plus the chunk entries' `artifacts:` maps), next
//            to a copy of each chunk's baserock/CHUNK.meta. Bootstrap chunks
//            are left out. No chunk files: a stratum records, it does not hold.
//   system:  exactly the files of the stratum products it selects (a
//            `strata:` entry's `artifacts:`, or all), taken from each chunk's
//            manifest with modes, symlinks and the chunk's own hard links as
//            built (never by re-importing a hard-linked staging tree), plus
//            baserock/*.meta for what was installed (only the selected
//            products). Then the system-integration commands of every chunk
//            in the system run in one sandbox whose root is the assembled
//            tree (base none), sorted by "NAME-PRODUCT" across the system
//            (ybd's order); what they change is merged into the tree, and
//            the tree is published.
//   cluster: baserock/CLUSTER.meta naming its systems.
// With Verify::yes every member file is re-hashed before it is used; a
// damaged member is dropped (and the stratum naming it forgotten) so that
// the worker rebuilds it: the assembly is then `abandoned`, not failed.
//
// Concurrency: called by one worker thread at a time.
#pragma once

#include <string>

#include "gang/build_context.hpp"
#include "gang/worker.hpp"

namespace gang {

// Assembles and publishes stratum, system or cluster `index` of ctx.graph.
[[nodiscard]] BuildReport assemble(const BuildContext& ctx, std::size_t index,
                                   const std::string& log_path);

// The system-integration commands of every chunk of system `index`, in
// ybd's order: keyed "NAME-PRODUCT" (a later chunk's key replaces an
// earlier one's), sorted by key, concatenated.
[[nodiscard]] Commands integration_commands(const BuildGraph& graph, std::size_t index);

}  // namespace gang
