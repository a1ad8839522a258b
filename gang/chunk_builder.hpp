// chunk_builder.hpp: building one chunk under its claim. Stages its
// dependencies (hard links into one tree, mounted read-only), checks its
// source out, runs its build steps in one sandbox, splits DESTDIR into the
// chunk's products (splitting.hpp) recorded in baserock/NAME.meta
// (baserock_meta.hpp), and publishes DESTDIR as the chunk's artifact.
//
// A chunk whose commands or source fail on their own, or whose output could
// never be staged (check_publishable), keeps its sandbox at
// kept_sandbox_dir() for `gang shell` and records the failure in the cache,
// so no instance retries it; a later successful build removes that kept
// sandbox. Trouble that is the machine's, not the component's (a full or
// failing disk, sandbox set-up, a dependency that vanished, a step killed
// from outside: step_trouble.hpp), is reported as `abandoned` and recorded
// nowhere. A stop request is checked before any failure is recorded: a step
// killed by our own Ctrl-C handling is `cancelled`.
//
// Concurrency: called by one worker thread at a time; a prepared chunk is
// run by the thread that prepared it (its sandbox dies with that thread).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "cache/git_mirrors.hpp"
#include "gang/build_context.hpp"
#include "gang/worker.hpp"

namespace gang {

// Builds and publishes chunk `index` of ctx.graph, logging to log_path:
// prepare_chunk, then run.
[[nodiscard]] BuildReport build_chunk(const BuildContext& ctx, const GitMirrors& git,
                                      std::size_t index, const std::string& log_path);

// A chunk's build set up to its commands: its log started (in the sandbox
// directory, moved into place by run()), its sandbox
// directory made, its dependencies' trees staged (and held in use), its
// source checked out and its sandbox built, held (HeldSteps). run() runs
// the commands (calling `meanwhile`, if set, once they run), then publishes or
// hands the publish to ctx.publish_later, as build_chunk does. Destroyed
// without run(), the build is dropped: its sandbox is killed and its
// directory removed; nothing is recorded.
class PreparedChunk {
 public:
  virtual ~PreparedChunk() = default;
  [[nodiscard]] virtual BuildReport run(const std::function<void()>& meanwhile) = 0;
};

// Sets chunk `index`'s build up to its commands; or, when it ended before
// them (a checkout that failed, a dependency that could not be staged, a
// sandbox that could not be started), the final report. Without the claim
// (`claimed` false: set up ahead), nothing shared is written (the log
// starts in the sandbox directory and takes its place at run()) and no
// failure is recorded (a checkout that fails is `abandoned`); run() must
// then be called only once the claim is won.
[[nodiscard]] std::variant<BuildReport, std::unique_ptr<PreparedChunk>> prepare_chunk(
    const BuildContext& ctx, const GitMirrors& git, std::size_t index, const std::string& log_path,
    bool claimed);

// Every path under dir (files, directories, links), relative to it, without
// a leading '/'; the order is unspecified.
[[nodiscard]] Result<std::vector<std::string>> list_tree(const std::string& dir);

// The longest path, relative to an artifact's root, that a chunk may
// publish. Staging joins it to a destination (the cache's tmp/ dir, a build
// directory, a sysroot) and the whole must stay under PATH_MAX (4096), so
// some 1 KiB is left for the destination; NAME_MAX (255) bounds each name.
inline constexpr std::size_t k_max_artifact_path = 3000;
inline constexpr std::size_t k_max_artifact_name = 255;

// Checks that the tree at install_dir can be published and then staged:
// only directories, regular files and symlinks (no FIFO, device or socket),
// no relative path longer than k_max_artifact_path bytes and no name longer
// than k_max_artifact_name. The error names the offending path (abbreviated
// when long) and its length. Walks with directory descriptors, so a path
// of any length is found.
[[nodiscard]] Result<void> check_publishable(const std::string& install_dir);

// Splits the tree at install_dir by chunk c's rules and writes
// install_dir/baserock/NAME.meta (NAME: the chunk's definition name).
[[nodiscard]] Result<void> record_products(const Component& c, const SplitRules& defaults,
                                           const std::string& install_dir);

}  // namespace gang
