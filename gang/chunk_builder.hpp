// chunk_builder.hpp: building one chunk under its claim. Stages its
// dependencies (hard links into one tree, mounted read-only), checks its
// source out, runs its build steps in one sandbox, splits DESTDIR into the
// chunk's products (splitting.hpp) recorded in baserock/NAME.meta
// (baserock_meta.hpp), and publishes DESTDIR as the chunk's artifact.
//
// A chunk whose commands or source fail keeps its sandbox at
// kept_sandbox_dir() for `gang shell` and records the failure in the cache,
// so no instance retries it. Trouble that is the machine's, not the
// component's (disk, sandbox set-up, a dependency that vanished), is
// reported as `abandoned` and recorded nowhere.
//
// Concurrency: called by one worker thread at a time.
#pragma once

#include <string>
#include <vector>

#include "cache/git_mirrors.hpp"
#include "gang/build_context.hpp"
#include "gang/worker.hpp"

namespace gang {

// Builds and publishes chunk `index` of ctx.graph, logging to log_path.
[[nodiscard]] BuildReport build_chunk(const BuildContext& ctx, const GitMirrors& git,
                                      std::size_t index, const std::string& log_path);

// Every path under dir (files, directories, links), relative to it, without
// a leading '/'; the order is unspecified.
[[nodiscard]] Result<std::vector<std::string>> list_tree(const std::string& dir);

// Splits the tree at install_dir by chunk c's rules and writes
// install_dir/baserock/NAME.meta (NAME: the chunk's definition name).
[[nodiscard]] Result<void> record_products(const Component& c, const SplitRules& defaults,
                                           const std::string& install_dir);

}  // namespace gang
