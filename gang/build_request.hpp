// build_request.hpp: one gang's build request, as `gang build` (the
// frontend) resolved it, handed to each of its workers as a command line.
// Its flags are declared here once: to_argv() writes them and parse() (for
// `gang worker`) reads them back, so a new flag is one edit.
//
// One truth per gang: the frontend resolves every branch and tag once and
// writes what it found (SourcePins: the commits, and the target's cache key)
// to a pins file. Each worker resolves the same refs to the same commits
// through it, whatever the mirrors say by then (another gang may have
// fetched meanwhile), and refuses to build if its target key still differs
// (the definitions changed under it). A worker started by hand, without
// --pins, resolves refs itself. Plain values; thread-safe as such.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "definitions/source_resolver.hpp"
#include "gang/commands.hpp"
#include "util/error.hpp"

namespace gang {

struct BuildRequest {
  // What to build, and where.
  std::string target;       // the target's definition file
  std::string definitions;  // the definitions root ("" : found from the target)
  std::string arch;         // "" : the host's
  std::string cache_dir;    // "" : the configured one
  std::optional<std::string> base;  // --base (it is in the cache keys)
  std::optional<int> max_jobs;
  bool offline = false;
  bool strict = false;
  bool verify = false;
  // The remote tier ("" : none).
  std::string remote_cache;
  std::string redis;
  bool no_remote_push = false;
  // Failures recorded before this time are retried (--retry-failed).
  std::optional<std::int64_t> retry_failed_before_ms;
  std::string gang_id;
  std::string pins_file;  // "" : resolve refs from the mirrors
  // This worker (added per instance by the frontend).
  int instance = 1;
  std::uint64_t seed = 0;
  int events_fd = -1;

  // The `gang worker` arguments (after "worker") that parse() reads back.
  [[nodiscard]] std::vector<std::string> to_argv() const;
  // Parses `gang worker`'s arguments. Returns the exit status to return at
  // once instead (0 after --help, 2 after a usage error, printed).
  [[nodiscard]] static std::expected<BuildRequest, int> parse(const Args& args);

  bool operator==(const BuildRequest&) const = default;
};

// The sources a frontend resolved, and the target key they give.
struct SourcePins {
  std::string target_key;
  std::map<std::pair<std::string, std::string>, ResolvedSource> sources;  // (repo, ref) ->

  // JSON: {"target_key": K, "sources": [{"repo", "ref", "commit", "tree",
  // "commit_time"}...]}.
  [[nodiscard]] std::string encode() const;
  // Errors name `origin` (the file) and what is wrong.
  [[nodiscard]] static Result<SourcePins> decode(const std::string& text, const std::string& origin);
};

// A resolver that answers pinned (repo, ref) pairs from `pins` and asks
// `fallback` for any other.
class PinnedSourceResolver final : public SourceResolver {
 public:
  PinnedSourceResolver(const SourcePins& pins, SourceResolver& fallback)
      : m_pins(pins), m_fallback(fallback) {}
  [[nodiscard]] Result<std::optional<ResolvedSource>> resolve(const std::string& repo,
                                                              const std::string& ref) override;

 private:
  const SourcePins& m_pins;
  SourceResolver& m_fallback;
};

}  // namespace gang
