// failure_records.hpp: the components whose build failed, recorded in the
// artifact index (its "failures" database) so that no worker of any gang
// retries them until asked to (--retry-failed clears them). A publish of the
// key clears its record in the same transaction (ArtifactCache::insert).
//
// Concurrency: any number of processes and threads; each call is one LMDB
// transaction, and a change tells the cache's watchers.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cache/records.hpp"
#include "cache/system.hpp"
#include "util/error.hpp"

namespace gang {

class ChangeNotifier;
class LmdbEnv;

class FailureRecords {
 public:
  // index: the artifact index; notifier: told of every change (it must
  // outlive this object); self: this process as a holder, for records whose
  // author is not given.
  FailureRecords(std::shared_ptr<LmdbEnv> index, std::shared_ptr<System> system,
                 const ChangeNotifier& notifier, std::function<Holder()> self);

  // Records that building key failed, with its log and the reason's first
  // line. `by` names the failing worker (default: this process, instance 0).
  [[nodiscard]] Result<void> record(const std::string& key, const std::string& log_path,
                                    const std::string& reason,
                                    std::optional<Holder> by = std::nullopt);
  // key's failure record, if any.
  [[nodiscard]] Result<std::optional<FailureRecord>> of(const std::string& key);
  // Removes key's failure record (for --retry-failed); fine if there is none.
  [[nodiscard]] Result<void> clear(const std::string& key);

 private:
  std::shared_ptr<LmdbEnv> m_index;
  std::shared_ptr<System> m_system;
  const ChangeNotifier* m_notifier;
  std::function<Holder()> m_self;
};

}  // namespace gang
