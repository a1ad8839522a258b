#include "cache/lmdb.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <mutex>

#include "util/fs.hpp"

namespace gang {

namespace {

std::unexpected<Error> lmdb_error(const std::string& what, int rc) {
  return make_error(what + ": " + mdb_strerror(rc));
}

MDB_val to_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view from_val(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// LMDB maps data.mdb and faults (SIGBUS) on any page past the end of the
// file, so a truncated data file would kill every process that opens it.
// Before mapping, compare the file's size with the last page the newest
// valid meta page references. The layout (lmdb's MDB_page and MDB_meta on
// a 64-bit host): each of pages 0 and 1 holds a 16-byte page header, then
// mm_magic (u32) at 16, mm_version (u32) at 20, mm_dbs[0].md_pad (the page
// size, u32) at 40, mm_last_pg (u64) at 136 and mm_txnid (u64) at 144.
Result<void> check_data_file(const std::string& dir) {
  std::string path = dir + "/data.mdb";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return {};  // a new environment
    return make_errno_error("cannot open the index data file " + path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return make_errno_error("cannot stat the index data file " + path);
  }
  auto damaged = [&](const std::string& why) {
    ::close(fd);
    return make_error("the cache index " + path + " is damaged: " + why +
                      "; run 'gang cache repair' to rebuild it from the blob store");
  };
  if (!S_ISREG(st.st_mode)) return damaged("it is not a regular file");
  if (st.st_size == 0) {
    ::close(fd);
    return {};  // LMDB initialises an empty file as a new environment
  }
  constexpr std::uint32_t k_magic = 0xBEEFC0DE;
  std::uint64_t best_txn = 0, need = 0;
  bool any = false;
  std::uint32_t page_size = 0;
  for (int page = 0; page < 2; ++page) {
    unsigned char buf[152];
    off_t offset = page == 0 ? 0 : static_cast<off_t>(page_size);
    if (page == 1 && page_size == 0) break;
    ssize_t n = ::pread(fd, buf, sizeof buf, offset);
    if (n != static_cast<ssize_t>(sizeof buf)) continue;
    std::uint32_t magic, psize;
    std::uint64_t last_pg, txnid;
    std::memcpy(&magic, buf + 16, 4);
    std::memcpy(&psize, buf + 40, 4);
    std::memcpy(&last_pg, buf + 136, 8);
    std::memcpy(&txnid, buf + 144, 8);
    if (magic != k_magic || psize < 512 || psize > (1u << 16) || (psize & (psize - 1)) != 0) continue;
    if (page == 0) page_size = psize;
    if (!any || txnid > best_txn) {
      best_txn = txnid;
      need = (last_pg + 1) * psize;
      any = true;
    }
  }
  if (!any) return damaged("no valid meta page (the file is " + std::to_string(st.st_size) + " bytes)");
  if (static_cast<std::uint64_t>(st.st_size) < need)
    return damaged("it is truncated (" + std::to_string(st.st_size) + " bytes; its last page ends at " +
                   std::to_string(need) + ")");
  ::close(fd);
  return {};
}

std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<LmdbEnv>>& registry() {
  static auto* r = new std::map<std::string, std::weak_ptr<LmdbEnv>>;
  return *r;
}

}  // namespace

Result<MDB_dbi> LmdbTxn::dbi(std::string_view db) const {
  auto it = m_dbis.find(std::string(db));
  if (it == m_dbis.end()) return make_error("LMDB: unknown database " + std::string(db));
  return it->second;
}

std::unexpected<Error> LmdbTxn::fail(const std::string& what, int rc) {
  if (rc == MDB_MAP_FULL) m_map_full = true;
  return lmdb_error(what, rc);
}

Result<std::optional<std::string>> LmdbTxn::get(std::string_view db, std::string_view key) {
  auto d = dbi(db);
  if (!d) return std::unexpected(d.error());
  MDB_val k = to_val(key);
  MDB_val v;
  int rc = mdb_get(m_txn, *d, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>{};
  if (rc != 0) return fail("LMDB get in " + std::string(db), rc);
  return std::optional<std::string>(std::string(from_val(v)));
}

Result<bool> LmdbTxn::put(std::string_view db, std::string_view key, std::string_view value,
                          bool no_overwrite) {
  auto d = dbi(db);
  if (!d) return std::unexpected(d.error());
  MDB_val k = to_val(key);
  MDB_val v = to_val(value);
  int rc = mdb_put(m_txn, *d, &k, &v, no_overwrite ? MDB_NOOVERWRITE : 0);
  if (rc == MDB_KEYEXIST && no_overwrite) return false;
  if (rc != 0) return fail("LMDB put in " + std::string(db), rc);
  return true;
}

Result<bool> LmdbTxn::del(std::string_view db, std::string_view key) {
  auto d = dbi(db);
  if (!d) return std::unexpected(d.error());
  MDB_val k = to_val(key);
  int rc = mdb_del(m_txn, *d, &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return fail("LMDB delete in " + std::string(db), rc);
  return true;
}

Result<void> LmdbTxn::for_each(std::string_view db,
                               const std::function<bool(std::string_view, std::string_view)>& fn) {
  auto d = dbi(db);
  if (!d) return std::unexpected(d.error());
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(m_txn, *d, &cursor);
  if (rc != 0) return fail("LMDB cursor on " + std::string(db), rc);
  MDB_val k, v;
  rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
  while (rc == 0) {
    if (!fn(from_val(k), from_val(v))) break;
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cursor);
  if (rc != 0 && rc != MDB_NOTFOUND) return fail("LMDB iteration over " + std::string(db), rc);
  return {};
}

Result<std::shared_ptr<LmdbEnv>> LmdbEnv::open(const std::string& dir, const Options& options) {
  auto made = make_dirs(dir);
  if (!made) return std::unexpected(made.error());
  char real[PATH_MAX];
  if (::realpath(dir.c_str(), real) == nullptr) return make_errno_error("cannot resolve " + dir);
  std::string key = real;

  std::lock_guard lock(g_registry_mutex);
  if (auto existing = registry()[key].lock()) {
    if (existing->m_pid == ::getpid()) return existing;
  }
  auto intact = check_data_file(key);
  if (!intact) return std::unexpected(intact.error());
  std::shared_ptr<LmdbEnv> env(new LmdbEnv);
  env->m_pid = ::getpid();
  env->m_dir = key;
  int rc = mdb_env_create(&env->m_env);
  if (rc != 0) return lmdb_error("LMDB: cannot create environment", rc);
  mdb_env_set_maxdbs(env->m_env, static_cast<MDB_dbi>(options.databases.size() + 2));
  mdb_env_set_mapsize(env->m_env, options.initial_map_size);
  mdb_env_set_maxreaders(env->m_env, 512);
  // MDB_NOMETASYNC: one fsync per commit instead of two. A system crash may
  // undo the last commit (an artifact is then rebuilt, a claim or failure
  // record forgotten) but never corrupts the index; blobs are durable before
  // any row naming them is committed.
  rc = mdb_env_open(env->m_env, key.c_str(),
                    MDB_NOTLS | (options.no_sync ? MDB_NOSYNC : MDB_NOMETASYNC), 0644);
  if (rc != 0) return lmdb_error("LMDB: cannot open " + key, rc);
  int dead = 0;
  mdb_reader_check(env->m_env, &dead);  // clear slots left by killed readers

  // Open the named databases once; the handles stay valid for the life of
  // the environment. A read-only transaction suffices when they exist (no
  // commit to sync); only a new environment needs a write transaction.
  for (unsigned flags : {unsigned{MDB_RDONLY}, 0u}) {
    bool missing = false;
    for (int attempt = 0;; ++attempt) {
      auto txn = env->begin(flags);
      if (!txn) return std::unexpected(txn.error());
      bool grow = false;
      missing = false;
      for (const auto& name : options.databases) {
        MDB_dbi dbi;
        rc = mdb_dbi_open(*txn, name.c_str(), flags == 0 ? MDB_CREATE : 0, &dbi);
        if (rc == 0) {
          env->m_dbis[name] = dbi;
          continue;
        }
        mdb_txn_abort(*txn);
        env->m_resize.unlock_shared();
        if (rc == MDB_NOTFOUND && flags != 0) {
          missing = true;
          break;
        }
        if (rc == MDB_MAP_FULL && attempt < 8) {
          grow = true;
          break;
        }
        return lmdb_error("LMDB: cannot open database " + name, rc);
      }
      if (missing) break;
      if (grow) {
        std::unique_lock lock(env->m_resize);
        mdb_env_set_mapsize(env->m_env, env->map_size() * 2);
        continue;
      }
      rc = mdb_txn_commit(*txn);
      env->m_resize.unlock_shared();
      if (rc != 0) return lmdb_error("LMDB: cannot open the databases of " + key, rc);
      break;
    }
    if (!missing) break;
    env->m_dbis.clear();
  }
  registry()[key] = env;
  return env;
}

LmdbEnv::~LmdbEnv() {
  // A forked child must not close its parent's environment; it just drops it.
  if (m_env != nullptr && m_pid == ::getpid()) mdb_env_close(m_env);
}

Result<void> LmdbEnv::check_pid() const {
  if (m_pid != ::getpid())
    return make_error("LMDB environment " + m_dir +
                      " was opened by process " + std::to_string(m_pid) +
                      " and cannot be used after fork(); open the cache again in the child");
  return {};
}

std::size_t LmdbEnv::map_size() const {
  MDB_envinfo info;
  mdb_env_info(m_env, &info);
  return info.me_mapsize;
}

// Begins a transaction holding m_resize shared; the caller unlocks it after
// commit or abort.
Result<MDB_txn*> LmdbEnv::begin(unsigned flags) {
  auto ok = check_pid();
  if (!ok) return std::unexpected(ok.error());
  for (int attempt = 0;; ++attempt) {
    m_resize.lock_shared();
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(m_env, nullptr, flags, &txn);
    if (rc == 0) return txn;
    m_resize.unlock_shared();
    if (rc == MDB_MAP_RESIZED && attempt < 8) {
      // Another process grew the map: adopt its size.
      std::unique_lock grow(m_resize);
      mdb_env_set_mapsize(m_env, 0);
      continue;
    }
    return lmdb_error("LMDB: cannot begin a transaction in " + m_dir, rc);
  }
}

Result<void> LmdbEnv::read(const std::function<Result<void>(LmdbTxn&)>& fn) {
  auto txn = begin(MDB_RDONLY);
  if (!txn) return std::unexpected(txn.error());
  Result<void> result;
  {
    LmdbTxn t(*txn, m_dbis);
    result = fn(t);
  }
  mdb_txn_abort(*txn);
  m_resize.unlock_shared();
  return result;
}

Result<void> LmdbEnv::write(const std::function<Result<void>(LmdbTxn&)>& fn) {
  for (int attempt = 0;; ++attempt) {
    auto txn = begin(0);
    if (!txn) return std::unexpected(txn.error());
    LmdbTxn t(*txn, m_dbis);
    Result<void> result = fn(t);
    int rc = 0;
    if (result) {
      rc = mdb_txn_commit(*txn);
    } else {
      mdb_txn_abort(*txn);
    }
    m_resize.unlock_shared();
    bool full = t.map_full() || rc == MDB_MAP_FULL;
    if (full && attempt < 16) {
      std::unique_lock grow(m_resize);
      std::size_t size = map_size();
      int set = mdb_env_set_mapsize(m_env, size * 2);
      if (set != 0) return lmdb_error("LMDB: cannot grow the map of " + m_dir, set);
      continue;
    }
    if (!result) return result;
    if (rc != 0) return lmdb_error("LMDB: cannot commit to " + m_dir, rc);
    return {};
  }
}

}  // namespace gang

namespace gang {

Result<void> LmdbEnv::copy_to(const std::string& dest) {
  if (auto ok = check_pid(); !ok) return ok;
  std::shared_lock lock(m_resize);
  int rc = mdb_env_copy2(m_env, dest.c_str(), 0);
  if (rc != 0) return lmdb_error("LMDB: cannot copy " + m_dir + " to " + dest, rc);
  return {};
}

}  // namespace gang
