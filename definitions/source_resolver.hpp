// source_resolver.hpp: the interface through which definitions/ learns what
// a chunk's (repo, ref) points at, without knowing about git. The git layer
// implements it; tests and offline tools use fakes or UnresolvedSources.
// Concurrency: implementations decide; compute_keys calls resolve() from one
// thread, at most once per distinct (repo, ref).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/error.hpp"

namespace gang {

struct ResolvedSource {
  std::string commit;            // the commit the ref names (hex)
  std::string tree;              // that commit's tree id (hex); the cache key uses this
  std::int64_t commit_time = 0;  // seconds since the epoch, for reproducible mtimes
};

class SourceResolver {
 public:
  virtual ~SourceResolver() = default;

  // What `ref` names in `repo` (repo as written in the definitions, alias not
  // expanded). nullopt: not known yet (not fetched, or offline); the key
  // stays pending. An error: the lookup itself failed (bad ref, corrupt repo).
  [[nodiscard]] virtual Result<std::optional<ResolvedSource>> resolve(const std::string& repo,
                                                                      const std::string& ref) = 0;
};

// Resolves nothing: every chunk with a repo stays pending.
class UnresolvedSources final : public SourceResolver {
 public:
  [[nodiscard]] Result<std::optional<ResolvedSource>> resolve(const std::string&,
                                                              const std::string&) override {
    return std::optional<ResolvedSource>{};
  }
};

}  // namespace gang
