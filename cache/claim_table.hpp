// claim_table.hpp: who is building which key, so that the workers of a gang
// (and the gangs sharing a cache) build each artifact once. A claim is
// decided against the index as well: a key already cached, or recorded as
// failed, is not claimed (ClaimOutcome says which).
//
// Claims live in an LMDB environment of their own, <root>/claims, whose
// commits are never flushed (MDB_NOSYNC): a claim dies with its holder's
// host anyway, so claiming costs no disk flush, and a claim never waits for
// a publish's flush (LMDB serialises the writers of one environment). A
// system crash may leave such an environment corrupt (its pages written
// back in any order), so it is made anew by the first open of each boot:
// <root>/claims/boot names the boot that made it. Without a boot id to tell
// boots apart, the environment is synced like the index.
//
// A claim of a holder on this host lasts while that process lives (pid,
// start time and boot checked); a claim of another host's holder lasts
// until its lease runs out (renew() extends it).
//
// Concurrency: any number of processes and threads at once; each call is
// one LMDB transaction (a claim looks with a read transaction first, as most
// attempts lose).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/records.hpp"
#include "cache/system.hpp"
#include "util/error.hpp"

namespace gang {

class ChangeNotifier;
class LmdbEnv;

struct ClaimOutcome {
  enum class Kind {
    won,             // the caller now holds the claim and should build
    held_by_other,   // holder is building it
    already_cached,  // the artifact exists: stage it instead
    failed,          // a failure is recorded (see failure); clear it to retry
  };
  Kind kind = Kind::won;
  std::optional<Holder> holder;          // held_by_other: who
  std::optional<FailureRecord> failure;  // failed: the record
};

class ClaimTable {
 public:
  // Opens <root>/claims (made anew after a reboot, see above); <root>/locks
  // must exist.
  [[nodiscard]] static Result<std::shared_ptr<LmdbEnv>> open_env(const std::string& root,
                                                                 System& system);

  // claims: open_env()'s environment; index: the artifact index it decides
  // against; notifier: told when a claim is given back. The notifier must
  // outlive the table.
  ClaimTable(std::shared_ptr<LmdbEnv> claims, std::shared_ptr<LmdbEnv> index,
             std::shared_ptr<System> system, std::chrono::milliseconds lease,
             const ChangeNotifier& notifier);

  // Claims key for holder unless it is cached, failed, or held by a live
  // holder (a dead one's claim, or an expired lease of another host, is
  // taken over). Re-claiming one's own claim renews it.
  [[nodiscard]] Result<ClaimOutcome> claim(const std::string& key, const Holder& holder);
  // Extends holder's lease on key; an error if holder does not hold it.
  [[nodiscard]] Result<void> renew(const std::string& key, const Holder& holder);
  // Gives key's claim back; an error if somebody else holds it, fine if
  // nobody does.
  [[nodiscard]] Result<void> release(const std::string& key, const Holder& holder);
  // The current claim on key, if any (dead holders included).
  [[nodiscard]] Result<std::optional<ClaimRecord>> claim_of(const std::string& key);
  // Deletes key's claim unless another process holds it; true if it deleted
  // one. `other`, if given, receives the holder of a claim it left.
  [[nodiscard]] Result<bool> drop_own(const std::string& key, const Holder& holder,
                                      std::optional<Holder>* other = nullptr);
  // Deletes key's claim whoever holds it; true if there was one.
  [[nodiscard]] Result<bool> drop(const std::string& key);
  // Calls fn with every claimed key.
  [[nodiscard]] Result<void> for_each_key(const std::function<void(std::string_view)>& fn);

 private:
  bool holder_alive(const ClaimRecord& claim) const;

  std::shared_ptr<LmdbEnv> m_claims;
  std::shared_ptr<LmdbEnv> m_index;
  std::shared_ptr<System> m_system;
  std::chrono::milliseconds m_lease;
  const ChangeNotifier* m_notifier;
};

}  // namespace gang
