// lmdb.hpp: a small RAII wrapper around LMDB for the artifact cache index.
//
// LmdbEnv is one open environment (a directory holding data.mdb and
// lock.mdb) with a fixed set of named databases. LMDB forbids opening the
// same environment twice in one process (closing one handle would drop the
// other's POSIX locks) and using an environment across fork(), so
// LmdbEnv::open() keeps a per-process registry keyed on the real path and
// hands out shared handles; every transaction checks that getpid() is still
// the pid that opened the environment and refuses to run in a forked child.
//
// Concurrency contract: an LmdbEnv may be shared by several threads of one
// process (MDB_NOTLS: read transactions are not bound to a thread). Writes
// from all processes serialise on LMDB's writer lock. write() grows the map
// automatically on MDB_MAP_FULL and every transaction adopts a size grown by
// another process (MDB_MAP_RESIZED). Do not start a write() while the same
// thread is inside read() or write() on the same environment.
#pragma once

#include <lmdb.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace gang {

// One transaction, valid only inside the callback of LmdbEnv::read/write.
class LmdbTxn {
 public:
  LmdbTxn(MDB_txn* txn, const std::map<std::string, MDB_dbi>& dbis) : m_txn(txn), m_dbis(dbis) {}
  LmdbTxn(const LmdbTxn&) = delete;
  LmdbTxn& operator=(const LmdbTxn&) = delete;

  // The value stored under key in database db, or nullopt if absent.
  [[nodiscard]] Result<std::optional<std::string>> get(std::string_view db, std::string_view key);
  // Stores value; with no_overwrite, returns false (and changes nothing) if
  // the key already exists.
  [[nodiscard]] Result<bool> put(std::string_view db, std::string_view key, std::string_view value,
                                 bool no_overwrite = false);
  // Deletes key; returns false if it was absent.
  [[nodiscard]] Result<bool> del(std::string_view db, std::string_view key);
  // Calls fn for every row in key order; stops early when fn returns false.
  [[nodiscard]] Result<void> for_each(
      std::string_view db, const std::function<bool(std::string_view, std::string_view)>& fn);

  // True after an operation failed with MDB_MAP_FULL (write() then retries).
  [[nodiscard]] bool map_full() const { return m_map_full; }

 private:
  [[nodiscard]] Result<MDB_dbi> dbi(std::string_view db) const;
  std::unexpected<Error> fail(const std::string& what, int rc);

  MDB_txn* m_txn;
  const std::map<std::string, MDB_dbi>& m_dbis;
  bool m_map_full = false;
};

class LmdbEnv {
 public:
  struct Options {
    std::size_t initial_map_size = std::size_t{64} << 20;  // bytes; doubled on MDB_MAP_FULL
    std::vector<std::string> databases;                      // named databases, created if absent
    // MDB_NOSYNC: commits are never flushed. Only for records that die with
    // their host anyway, in an environment made anew after a crash (a
    // system crash may leave it corrupt).
    bool no_sync = false;
  };

  // Opens (creating if needed) the environment in directory `dir`, or returns
  // the handle this process already has for it. Clears stale reader slots.
  [[nodiscard]] static Result<std::shared_ptr<LmdbEnv>> open(const std::string& dir,
                                                             const Options& options);
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  // Runs fn in a read-only transaction.
  [[nodiscard]] Result<void> read(const std::function<Result<void>(LmdbTxn&)>& fn);
  // Runs fn in a write transaction and commits it if fn succeeds; aborts on
  // error. On MDB_MAP_FULL the map is doubled and fn runs again from scratch,
  // so fn must only have effects through the transaction.
  [[nodiscard]] Result<void> write(const std::function<Result<void>(LmdbTxn&)>& fn);

  // Writes a consistent snapshot of the environment into directory dest
  // (which must exist and hold no data.mdb), without blocking writers.
  [[nodiscard]] Result<void> copy_to(const std::string& dest);

  // The current map size in bytes (for tests and diagnostics).
  [[nodiscard]] std::size_t map_size() const;

 private:
  LmdbEnv() = default;
  [[nodiscard]] Result<void> check_pid() const;
  [[nodiscard]] Result<MDB_txn*> begin(unsigned flags);


  MDB_env* m_env = nullptr;
  int m_pid = 0;
  std::string m_dir;
  std::map<std::string, MDB_dbi> m_dbis;
  std::shared_mutex m_resize;  // txns hold it shared; growing the map holds it exclusively

};

}  // namespace gang
