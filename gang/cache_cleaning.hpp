// cache_cleaning.hpp: housekeeping that reaches beyond the artifact store:
// the sandboxes failed builds leave in <cache>/failed/ for `gang shell`
// (removed by `gang cache gc` once older than an age), and the removal of a
// whole cache (`gang cache clean`). Sandboxes are removed with
// remove_sandbox(), which unmounts leftovers and makes overlayfs's mode-000
// work directories removable, so an unprivileged owner can always clean up
// what its own builds made.
//
// Concurrency: meant for a cache no build is using at the moment for clean;
// removing a kept sandbox while `gang shell` is inside it makes that shell
// lose its files (its mounts stay valid).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "util/error.hpp"

namespace gang {

inline constexpr std::chrono::seconds k_default_keep_failed{7 * 24 * 3600};

// "7d", "12h", "30m", "45s", "0" (a bare number is seconds). Errors name the text.
[[nodiscard]] Result<std::chrono::seconds> parse_age(const std::string& text);

struct KeptSandbox {
  std::string component;  // the directory's name under failed/
  std::string path;
  std::int64_t failed_at_s = 0;  // when it was kept (its sandbox.spec's mtime, else the directory's)
};

// The kept sandboxes of failed builds under <cache_dir>/failed/, oldest first.
[[nodiscard]] std::vector<KeptSandbox> kept_sandboxes(const std::string& cache_dir);

struct KeptRemoval {
  std::vector<std::string> removed;  // components
  std::vector<std::string> errors;   // one message per sandbox that could not be removed
};

// Removes the kept sandboxes that failed at least `age` before now_s.
[[nodiscard]] KeptRemoval remove_kept_sandboxes(const std::string& cache_dir,
                                                std::chrono::seconds age, std::int64_t now_s);

// Removes the cache at cache_dir entirely: kept and scratch sandboxes first
// (remove_sandbox), then everything else. Refuses a directory that does not
// look like a gang cache (no index/ and no objects/), so a mistyped --cache
// never removes anything else. Succeeds if cache_dir does not exist.
[[nodiscard]] Result<void> remove_cache(const std::string& cache_dir);

}  // namespace gang
