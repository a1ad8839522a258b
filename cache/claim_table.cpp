#include "cache/claim_table.hpp"

#include <unistd.h>

#include "cache/change_notifier.hpp"
#include "cache/file_lock.hpp"
#include "cache/index_names.hpp"
#include "cache/lmdb.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

constexpr const char* k_artifacts = index_names::artifacts;
constexpr const char* k_claims = index_names::claims;
constexpr const char* k_failures = index_names::failures;

}  // namespace

Result<std::shared_ptr<LmdbEnv>> ClaimTable::open_env(const std::string& root, System& sys) {
  const std::string dir = root + "/claims";
  if (auto made = make_dirs(dir); !made) return pass(made);
  const std::string boot = sys.boot_id();
  auto lock = FileLock::acquire(root + "/locks/claims.lock", FileLock::Kind::exclusive,
                                FileLock::Wait::block);
  if (!lock) return pass(lock);
  if (!boot.empty()) {
    auto recorded = read_file(dir + "/boot");
    if (!recorded || *recorded != boot + "\n") {
      for (const char* file : {"/data.mdb", "/lock.mdb"})
        if (::unlink((dir + file).c_str()) != 0 && errno != ENOENT)
          return make_errno_error("cannot remove " + dir + file);
      if (auto written = write_file_atomic(dir + "/boot", boot + "\n"); !written)
        return pass(written);
    }
  }
  LmdbEnv::Options options;
  options.initial_map_size = std::size_t{8} << 20;
  options.databases = {index_names::claims};
  options.no_sync = !boot.empty();
  return LmdbEnv::open(dir, options);
}

ClaimTable::ClaimTable(std::shared_ptr<LmdbEnv> claims, std::shared_ptr<LmdbEnv> index,
                       std::shared_ptr<System> system, std::chrono::milliseconds lease,
                       const ChangeNotifier& notifier)
    : m_claims(std::move(claims)),
      m_index(std::move(index)),
      m_system(std::move(system)),
      m_lease(lease),
      m_notifier(&notifier) {}

bool ClaimTable::holder_alive(const ClaimRecord& claim) const {
  System& sys = *m_system;
  if (claim.holder.host == sys.host_name()) {
    // A holder recorded in another boot of this host died in the reboot.
    if (!claim.holder.boot_id.empty() && claim.holder.boot_id != sys.boot_id()) return false;
    auto start = sys.process_start_time(claim.holder.pid);
    return start && (claim.holder.start_time == 0 || *start == claim.holder.start_time);
  }
  return sys.now_ms() < claim.lease_until_ms;
}

Result<ClaimOutcome> ClaimTable::claim(const std::string& key, const Holder& holder) {
  if (!valid_cache_key(key)) return make_error("invalid cache key \"" + key + "\"");
  ClaimOutcome outcome;
  bool take = false;
  // Decides from the index as it is now and from the claims transaction
  // `txn`; sets take when the caller may claim. (The index and the claims
  // are two environments: an artifact published just after this look is
  // caught by the caller's re-check after winning.)
  auto decide = [&](LmdbTxn& txn) -> Result<void> {
    take = false;
    outcome = ClaimOutcome{};
    bool settled = false;
    auto indexed = m_index->read([&](LmdbTxn& index) -> Result<void> {
      auto row = index.get(k_artifacts, key);
      if (!row) return pass(row);
      if (*row) {
        outcome.kind = ClaimOutcome::Kind::already_cached;
        settled = true;
        return {};
      }
      auto failed = index.get(k_failures, key);
      if (!failed) return pass(failed);
      if (*failed) {
        auto record = decode_failure(**failed);
        if (record) {
          outcome.kind = ClaimOutcome::Kind::failed;
          outcome.failure = std::move(*record);
          settled = true;
        }
      }
      return {};
    });
    if (!indexed) return indexed;
    if (settled) return {};
    auto claimed = txn.get(k_claims, key);
    if (!claimed) return pass(claimed);
    if (*claimed) {
      auto record = decode_claim(**claimed);
      if (record && !record->holder.same_process(holder) && holder_alive(*record)) {
        outcome.kind = ClaimOutcome::Kind::held_by_other;
        outcome.holder = record->holder;
        return {};
      }
    }
    take = true;
    outcome.kind = ClaimOutcome::Kind::won;
    return {};
  };
  // A read transaction first: most attempts lose and need no write lock.
  auto looked = m_claims->read(decide);
  if (!looked) return pass(looked);
  if (!take) return outcome;
  ClaimRecord record{holder, m_system->now_ms() + m_lease.count()};
  std::string row = encode_claim(record);
  auto done = m_claims->write([&](LmdbTxn& txn) -> Result<void> {
    auto decided = decide(txn);
    if (!decided || !take) return decided;
    auto put = txn.put(k_claims, key, row);
    if (!put) return pass(put);
    return {};
  });
  if (!done) return pass(done);
  return outcome;
}

Result<void> ClaimTable::renew(const std::string& key, const Holder& holder) {
  ClaimRecord record{holder, m_system->now_ms() + m_lease.count()};
  return m_claims->write([&](LmdbTxn& txn) -> Result<void> {
    auto claimed = txn.get(k_claims, key);
    if (!claimed) return pass(claimed);
    if (!*claimed) return make_error("cannot renew the claim on " + key + ": nobody holds it");
    auto current = decode_claim(**claimed);
    if (!current) return pass(current);
    if (!current->holder.same_process(holder))
      return make_error("cannot renew the claim on " + key + ": it is held by " +
                        current->holder.describe());
    auto put = txn.put(k_claims, key, encode_claim(record));
    if (!put) return pass(put);
    return {};
  });
}

Result<void> ClaimTable::release(const std::string& key, const Holder& holder) {
  std::optional<Holder> other;
  auto released = drop_own(key, holder, &other);
  if (!released) return pass(released);
  if (other)
    return make_error("cannot release the claim on " + key + ": it is held by " + other->describe());
  if (*released) m_notifier->bump();
  return {};
}

Result<std::optional<ClaimRecord>> ClaimTable::claim_of(const std::string& key) {
  std::optional<ClaimRecord> out;
  auto done = m_claims->read([&](LmdbTxn& txn) -> Result<void> {
    auto claimed = txn.get(k_claims, key);
    if (!claimed) return pass(claimed);
    if (!*claimed) return {};
    auto record = decode_claim(**claimed);
    if (!record) return pass(record);
    out = std::move(*record);
    return {};
  });
  if (!done) return pass(done);
  return out;
}

Result<bool> ClaimTable::drop_own(const std::string& key, const Holder& holder,
                                  std::optional<Holder>* other) {
  bool dropped = false;
  auto done = m_claims->write([&](LmdbTxn& txn) -> Result<void> {
    dropped = false;
    auto claimed = txn.get(k_claims, key);
    if (!claimed) return pass(claimed);
    if (!*claimed) return {};
    auto current = decode_claim(**claimed);
    if (current && !current->holder.same_process(holder)) {
      if (other != nullptr) *other = current->holder;
      return {};
    }
    auto d = txn.del(k_claims, key);
    if (!d) return pass(d);
    dropped = true;
    return {};
  });
  if (!done) return pass(done);
  return dropped;
}

Result<bool> ClaimTable::drop(const std::string& key) {
  bool any = false;
  auto done = m_claims->write([&](LmdbTxn& txn) -> Result<void> {
    auto d = txn.del(k_claims, key);
    if (!d) return pass(d);
    any = *d;
    return {};
  });
  if (!done) return pass(done);
  return any;
}

Result<void> ClaimTable::for_each_key(const std::function<void(std::string_view)>& fn) {
  return m_claims->read([&](LmdbTxn& txn) -> Result<void> {
    return txn.for_each(k_claims, [&](std::string_view key, std::string_view) {
      fn(key);
      return true;
    });
  });
}

}  // namespace gang
