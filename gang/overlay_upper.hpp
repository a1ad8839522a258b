// overlay_upper.hpp: folding what commands wrote in a sandbox back into the
// tree they ran on. The sandbox's root is an overlayfs whose lower layer is
// the tree; its writes land in the upper layer (files copied up or created,
// whiteouts for removals, opaque directories for directories replaced), which
// outlives the sandbox until the sandbox directory is removed. The system
// assembler uses this to keep what system-integration commands changed.
//
// Concurrency: touches only `upper` and `tree`; one caller per tree.
#pragma once

#include <string>
#include <vector>

#include "util/error.hpp"

namespace gang {

// Applies an overlayfs upper layer to `tree`: upper files, links and
// directories replace what is at their path, whiteouts remove it, opaque
// directories replace the whole directory. Top-level names in `skip` are
// ignored unless `tree` has them (the sandbox's own mount points).
[[nodiscard]] Result<void> merge_overlay_upper(const std::string& upper, const std::string& tree,
                                               const std::vector<std::string>& skip = {});

}  // namespace gang
