#include "cache/failure_records.hpp"

#include "cache/change_notifier.hpp"
#include "cache/index_names.hpp"
#include "cache/lmdb.hpp"

namespace gang {

namespace {

constexpr const char* k_failures = index_names::failures;

}  // namespace

FailureRecords::FailureRecords(std::shared_ptr<LmdbEnv> index, std::shared_ptr<System> system,
                               const ChangeNotifier& notifier, std::function<Holder()> self)
    : m_index(std::move(index)),
      m_system(std::move(system)),
      m_notifier(&notifier),
      m_self(std::move(self)) {}

Result<void> FailureRecords::record(const std::string& key, const std::string& log_path,
                                    const std::string& reason, std::optional<Holder> by) {
  if (!valid_cache_key(key)) return make_error("invalid cache key \"" + key + "\"");
  FailureRecord record{log_path, reason, by ? std::move(*by) : m_self(), m_system->now_ms()};
  auto done = m_index->write([&](LmdbTxn& txn) -> Result<void> {
    auto put = txn.put(k_failures, key, encode_failure(record));
    if (!put) return pass(put);
    return {};
  });
  if (!done) return done;
  m_notifier->bump();
  return {};
}

Result<std::optional<FailureRecord>> FailureRecords::of(const std::string& key) {
  std::optional<FailureRecord> out;
  auto done = m_index->read([&](LmdbTxn& txn) -> Result<void> {
    auto row = txn.get(k_failures, key);
    if (!row) return pass(row);
    if (!*row) return {};
    auto record = decode_failure(**row);
    if (!record) return pass(record);
    out = std::move(*record);
    return {};
  });
  if (!done) return pass(done);
  return out;
}

Result<void> FailureRecords::clear(const std::string& key) {
  bool removed = false;
  auto done = m_index->write([&](LmdbTxn& txn) -> Result<void> {
    auto d = txn.del(k_failures, key);
    if (!d) return pass(d);
    removed = *d;
    return {};
  });
  if (!done) return done;
  if (removed) m_notifier->bump();
  return {};
}

}  // namespace gang
