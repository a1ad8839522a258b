#include "cache/artifact_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "cache/build_dirs.hpp"
#include "cache/change_notifier.hpp"
#include "cache/claim_table.hpp"
#include "cache/failure_records.hpp"
#include "cache/file_lock.hpp"
#include "cache/index_names.hpp"
#include "cache/lmdb.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

constexpr const char* k_artifacts = index_names::artifacts;
constexpr const char* k_claims = index_names::claims;
constexpr const char* k_failures = index_names::failures;
constexpr const char* k_durations = index_names::durations;

}  // namespace

struct ArtifactCache::Impl {
  std::string root;
  Options options;
  std::shared_ptr<LmdbEnv> env;
  BlobStore blobs;
  ChangeNotifier notifier;
  BuildDirs build_dirs;
  ClaimTable claim_table;
  FailureRecords failure_records;
  std::mutex insert_mutex;  // BlobStore's writers are single-threaded

  Impl(std::string r, Options o, std::shared_ptr<LmdbEnv> e, std::shared_ptr<LmdbEnv> c,
       BlobStore b, ChangeNotifier n)
      : root(std::move(r)),
        options(std::move(o)),
        env(std::move(e)),
        blobs(std::move(b)),
        notifier(std::move(n)),
        build_dirs(root + "/tmp", options.system, options.orphan_age_s,
                   [this](const std::string& message) { warn(message); }),
        claim_table(std::move(c), env, options.system, options.lease, notifier),
        failure_records(env, options.system, notifier, [this] { return self_holder(0, {}); }) {}

  // This process as a claim holder / builder.
  Holder self_holder(int instance, std::string gang_id) const {
    System& sys = *options.system;
    Holder h;
    h.host = sys.host_name();
    h.pid = sys.self_pid();
    h.start_time = sys.process_start_time(h.pid).value_or(0);
    h.boot_id = sys.boot_id();
    h.instance = instance;
    h.gang_id = std::move(gang_id);
    return h;
  }

  std::string key_lock_path(const std::string& key) const {
    return root + "/locks/" + sha256_hex(key);
  }
  std::string gc_lock_path() const { return root + "/locks/gc.lock"; }

  void warn(const std::string& message) const {
    if (options.warn) {
      options.warn(message);
    } else {
      std::fprintf(stderr, "gang: warning: %s\n", message.c_str());
    }
  }

  std::int64_t last_used_ms(const std::string& key, std::int64_t fallback) const {
    struct stat st;
    if (::stat(key_lock_path(key).c_str(), &st) != 0) return fallback;
    std::int64_t ms = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    return std::max(ms, fallback);
  }

  Result<std::optional<ArtifactInfo>> lookup(const std::string& key) {
    std::optional<ArtifactInfo> out;
    auto done = env->read([&](LmdbTxn& txn) -> Result<void> {
      auto row = txn.get(k_artifacts, key);
      if (!row) return pass(row);
      if (!*row) return {};
      auto info = decode_artifact(key, **row);
      if (!info) return pass(info);
      out = std::move(*info);
      return {};
    });
    if (!done) return pass(done);
    if (out) out->last_used_ms = last_used_ms(key, out->created_ms);
    return out;
  }

  // A manifest; *damaged (when given) says whether a failure is verified
  // damage (missing, wrong hash, undecodable) rather than a read error.
  Result<Manifest> read_manifest(const std::string& digest, bool* damaged = nullptr) {
    if (damaged != nullptr) *damaged = false;
    auto text = blobs.read_checked(digest);
    if (!text) return pass(text);
    if (damaged != nullptr) *damaged = true;
    if (!*text) return make_error("manifest " + digest + " is missing or corrupt (hash mismatch)");
    auto manifest = Manifest::decode(**text);
    if (manifest && damaged != nullptr) *damaged = false;
    return manifest;
  }

  // True if info's manifest is damaged or names a blob that is missing or
  // in `bad`; an error if the manifest could not be read (not damage).
  Result<bool> artifact_damaged(const ArtifactInfo& info, const std::set<BlobId>& bad) {
    bool damaged = false;
    auto manifest = read_manifest(info.manifest_digest, &damaged);
    if (!manifest && !damaged) return pass(manifest);
    if (!manifest) return true;
    for (const auto& e : manifest->entries) {
      if (e.type != ManifestEntry::Type::file) continue;
      BlobId id{e.digest, (e.mode & 0111) != 0};
      if (bad.count(id) != 0 || !blobs.contains(id)) return true;
    }
    return false;
  }

  // Stores manifest, recording key and info's row (without the manifest
  // digest, which names it, so that repair() can rebuild the index), then
  // makes every blob durable before any index row can name them; sets
  // info.manifest_digest. False if key was published meanwhile (no garbage
  // manifest then). The caller holds insert_mutex.
  Result<bool> store_manifest(ArtifactCache& self, const std::string& key, Manifest& manifest,
                              ArtifactInfo& info) {
    manifest.key = key;
    manifest.record = encode_artifact(info);
    if (self.contains(key)) return false;
    auto digest = blobs.put_bytes(manifest.encode());
    if (!digest) return pass(digest);
    auto synced = blobs.sync();
    if (!synced) return pass(synced);
    info.manifest_digest = *digest;
    return true;
  }

  // commit(), as insert()'s outcome.
  Result<PublishOutcome> publish(const std::string& key, const ArtifactInfo& info) {
    auto inserted = commit(key, info);
    if (!inserted) return pass(inserted);
    return *inserted ? PublishOutcome::inserted : PublishOutcome::already_present;
  }

  // Commits info's index row (MDB_NOOVERWRITE) and clears key's failure
  // record; false if somebody published key first.
  Result<bool> commit(const std::string& key, const ArtifactInfo& info) {
    std::string row = encode_artifact(info);
    bool inserted = false;
    auto done = env->write([&](LmdbTxn& txn) -> Result<void> {
      auto put = txn.put(k_artifacts, key, row, /*no_overwrite=*/true);
      if (!put) return pass(put);
      inserted = *put;
      if (inserted) {
        auto cleared = txn.del(k_failures, key);
        if (!cleared) return pass(cleared);
      }
      // The build's duration, for later schedulers: in the same commit (one
      // synced commit per publish).
      if (inserted && !info.meta.history.empty()) {
        auto recorded = txn.put(k_durations, info.meta.history,
                                std::to_string(info.meta.build_duration.count()));
        if (!recorded) return pass(recorded);
      }
      if (int err = options.file_system->before_index_commit(); err != 0)
        return make_errno_error("LMDB: cannot commit to " + root + "/index", err);
      return {};
    });
    if (!done) return pass(done);
    if (inserted) {
      // The publisher's own claim goes with it: its release afterwards then
      // changes nothing.
      auto released = claim_table.drop_own(key, info.meta.built_by);
      if (!released) warn("cannot release the claim on " + key + ": " + released.error().to_string());
      notifier.bump();
    }
    return inserted;
  }

  // Removes key's artifact row (damaged) and tells the watchers.
  void drop(const std::string& key) {
    auto dropped = env->write([&](LmdbTxn& txn) -> Result<void> {
      auto d = txn.del(k_artifacts, key);
      if (!d) return pass(d);
      return {};
    });
    if (!dropped) warn("cannot drop damaged artifact " + key + ": " + dropped.error().to_string());
    notifier.bump();
  }
};

ArtifactCache::ArtifactCache(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
ArtifactCache::ArtifactCache(ArtifactCache&&) noexcept = default;
ArtifactCache& ArtifactCache::operator=(ArtifactCache&&) noexcept = default;
ArtifactCache::~ArtifactCache() = default;

namespace {

}  // namespace

Result<ArtifactCache> ArtifactCache::open(const std::string& root) { return open(root, Options{}); }

Result<ArtifactCache> ArtifactCache::open(const std::string& root, Options options) {
  if (root.empty()) return make_error("no cache directory given");
  if (!options.system) options.system = real_system();
  for (const char* sub : {"", "/locks", "/logs", "/tmp", "/index"}) {
    auto made = make_dirs(root + sub);
    if (!made) return pass(made);
  }
  // Private: blobs are 0444 whatever the mode of the file they hold, so the
  // root's mode is what keeps a 0600 file in an artifact from other users.
  struct stat root_st;
  if (::stat(root.c_str(), &root_st) == 0 && root_st.st_uid == ::geteuid() &&
      (root_st.st_mode & 077) != 0 && ::chmod(root.c_str(), 0700) != 0)
    return make_errno_error("cannot make the cache " + root + " private (mode 0700)");
  LmdbEnv::Options env_options;
  env_options.initial_map_size = options.initial_map_size;
  env_options.databases.assign(std::begin(index_names::all), std::end(index_names::all));
  auto env = LmdbEnv::open(root + "/index", env_options);
  if (!env) return pass(env);
  auto claims = ClaimTable::open_env(root, *options.system);
  if (!claims) return pass(claims);
  if (!options.file_system) options.file_system = real_file_system();
  auto blobs = BlobStore::open(root, options.temp_files, options.file_system);
  if (!blobs) return pass(blobs);
  auto notifier = ChangeNotifier::open(root);
  if (!notifier) return pass(notifier);
  return ArtifactCache(std::make_unique<Impl>(root, std::move(options), std::move(*env),
                                              std::move(*claims), std::move(*blobs),
                                              std::move(*notifier)));
}

const std::string& ArtifactCache::root() const { return m_impl->root; }
std::string ArtifactCache::logs_dir() const { return m_impl->root + "/logs"; }
std::string ArtifactCache::tmp_dir() const { return m_impl->root + "/tmp"; }

const BuildDirs& ArtifactCache::build_dirs() const { return m_impl->build_dirs; }

Holder ArtifactCache::holder(int instance, std::string gang_id) const {
  return m_impl->self_holder(instance, std::move(gang_id));
}

ClaimTable& ArtifactCache::claims() { return m_impl->claim_table; }
FailureRecords& ArtifactCache::failures() { return m_impl->failure_records; }

bool ArtifactCache::valid_key(const std::string& key) { return valid_cache_key(key); }

bool ArtifactCache::contains(const std::string& key) {
  bool found = false;
  auto done = m_impl->env->read([&](LmdbTxn& txn) -> Result<void> {
    auto row = txn.get(k_artifacts, key);
    if (!row) return pass(row);
    found = row->has_value();
    return {};
  });
  return done && found;
}

Result<std::optional<ArtifactInfo>> ArtifactCache::lookup(const std::string& key) {
  return m_impl->lookup(key);
}

Result<std::vector<ArtifactCache::KeyState>> ArtifactCache::states(
    const std::vector<std::string>& keys) {
  std::vector<KeyState> out;
  auto done = m_impl->env->read([&](LmdbTxn& txn) -> Result<void> {
    out.assign(keys.size(), {});
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto row = txn.get(k_artifacts, keys[i]);
      if (!row) return pass(row);
      out[i].cached = row->has_value();
      if (out[i].cached) continue;
      auto failed = txn.get(k_failures, keys[i]);
      if (!failed) return pass(failed);
      if (!*failed) continue;
      auto record = decode_failure(**failed);
      if (record) out[i].failure = std::move(*record);
    }
    return {};
  });
  if (!done) return pass(done);
  return out;
}

Result<std::vector<std::string>> ArtifactCache::manifest_digests(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  auto done = m_impl->env->read([&](LmdbTxn& txn) -> Result<void> {
    out.clear();
    for (const auto& key : keys) {
      auto row = txn.get(k_artifacts, key);
      if (!row) return pass(row);
      if (!*row) {
        out.emplace_back();
        continue;
      }
      auto info = decode_artifact(key, **row);
      if (!info) return pass(info);
      out.push_back(std::move(info->manifest_digest));
    }
    return {};
  });
  if (!done) return pass(done);
  return out;
}

Result<std::vector<ArtifactInfo>> ArtifactCache::list() {
  std::vector<ArtifactInfo> out;
  std::vector<std::string> bad;
  auto done = m_impl->env->read([&](LmdbTxn& txn) -> Result<void> {
    return txn.for_each(k_artifacts, [&](std::string_view key, std::string_view row) {
      auto info = decode_artifact(key, row);
      if (info) {
        out.push_back(std::move(*info));
      } else {
        bad.emplace_back(key);
      }
      return true;
    });
  });
  if (!done) return pass(done);
  for (const auto& key : bad) m_impl->warn("index row for " + key + " is corrupt; ignoring it");
  for (auto& info : out) info.last_used_ms = m_impl->last_used_ms(info.key, info.created_ms);
  return out;
}

Result<Manifest> ArtifactCache::manifest(const std::string& key) {
  auto info = m_impl->lookup(key);
  if (!info) return pass(info);
  if (!*info) return make_error("no artifact " + key + " in the cache");
  return m_impl->read_manifest((*info)->manifest_digest);
}

Result<PublishOutcome> ArtifactCache::insert(const std::string& key, const std::string& dir,
                                             const ArtifactMeta& meta, Ownership ownership,
                                             const StagedCopies* copies) {
  if (!valid_key(key)) return make_error("invalid cache key \"" + key + "\"");
  Impl& m = *m_impl;
  // Shared with other inserts, exclusive with gc: our new blobs are not yet
  // referenced by any index row and gc must not sweep them.
  auto gc_lock = FileLock::acquire(m.gc_lock_path(), FileLock::Kind::shared, FileLock::Wait::block);
  if (!gc_lock) return pass(gc_lock);
  if (contains(key)) return PublishOutcome::already_present;

  ArtifactInfo info;
  info.key = key;
  info.meta = meta;
  {
    std::lock_guard lock(m.insert_mutex);
    auto manifest = import_tree(dir, m.blobs, ownership, copies);
    if (!manifest) return pass(manifest);
    info.size = manifest->total_size();
    info.file_count = manifest->file_count();
    info.created_ms = m.options.system->now_ms();
    auto stored = m.store_manifest(*this, key, *manifest, info);
    if (!stored) return pass(stored);
    if (!*stored) return PublishOutcome::already_present;
  }
  return m.publish(key, info);
}

Result<PublishOutcome> ArtifactCache::insert_fetched(const std::string& key,
                                                     const Manifest& manifest,
                                                     const ArtifactMeta& meta,
                                                     const BlobFetcher& fetch) {
  if (!valid_key(key)) return make_error("invalid cache key \"" + key + "\"");
  Impl& m = *m_impl;
  auto gc_lock = FileLock::acquire(m.gc_lock_path(), FileLock::Kind::shared, FileLock::Wait::block);
  if (!gc_lock) return pass(gc_lock);
  if (contains(key)) return PublishOutcome::already_present;
  // The blobs this store lacks arrive in a directory of their own, made
  // only if one is missing (an artifact made of known blobs writes no file).
  struct FetchDir {
    std::string path;
    int fd = -1;
    ~FetchDir() {
      if (fd >= 0) ::close(fd);
      if (!path.empty()) (void)remove_tree(path);
    }
  } fetch_dir;
  auto open_fetch_dir = [&]() -> Result<void> {
    if (fetch_dir.fd >= 0) return {};
    auto dir = m.build_dirs.make("fetch");
    if (!dir) return pass(dir);
    fetch_dir.path = *dir;
    fetch_dir.fd = ::open(dir->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fetch_dir.fd < 0) return make_errno_error("cannot open " + *dir);
    return {};
  };
  ArtifactInfo info;
  info.key = key;
  info.meta = meta;
  {
    std::lock_guard lock(m.insert_mutex);
    std::set<BlobId> done;
    int n = 0;
    for (const auto& e : manifest.entries) {
      if (e.type != ManifestEntry::Type::file) continue;
      BlobId id{e.digest, (e.mode & 0111) != 0};
      if (done.contains(id)) continue;
      done.insert(id);
      if (m.blobs.contains_intact(id, e.size)) continue;
      if (auto opened = open_fetch_dir(); !opened) return pass(opened);
      const int dirfd = fetch_dir.fd;
      const std::string& dir = fetch_dir.path;
      std::string name = "b" + std::to_string(n++);
      int fd = ::openat(dirfd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return make_errno_error("cannot create " + dir + "/" + name);
      auto fetched = fetch(id, e.size, fd);
      ::close(fd);
      if (!fetched) return pass(fetched);
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, 0) != 0)
        return make_errno_error("cannot stat " + dir + "/" + name);
      if (static_cast<std::uint64_t>(st.st_size) != e.size)
        return make_error("blob " + e.digest + " of " + e.path + " arrived with " +
                          std::to_string(st.st_size) + " bytes, not " + std::to_string(e.size));
      // Hashed again as it is adopted: a wrong blob is never named right.
      auto digest = m.blobs.take_file(dirfd, name.c_str(), id.executable);
      if (!digest) return pass(digest);
      if (*digest != e.digest)
        return make_error("blob " + e.digest + " of " + e.path + " arrived corrupt (its SHA-256 is " +
                          *digest + ")");
    }
    Manifest mine = manifest;
    info.size = mine.total_size();
    info.file_count = mine.file_count();
    info.created_ms = m.options.system->now_ms();
    auto stored = m.store_manifest(*this, key, mine, info);
    if (!stored) return pass(stored);
    if (!*stored) return PublishOutcome::already_present;
  }
  return m.publish(key, info);
}

std::string ArtifactCache::blob_path(const BlobId& id) const { return m_impl->blobs.path(id); }

LmdbEnv& ArtifactCache::index_env() { return *m_impl->env; }

Result<void> ArtifactCache::record_duration(const std::string& component,
                                           std::chrono::milliseconds duration) {
  if (component.empty()) return make_error("record_duration: no component name");
  std::string value = std::to_string(duration.count());
  return m_impl->env->write([&](LmdbTxn& txn) -> Result<void> {
    auto put = txn.put(k_durations, component, value);
    if (!put) return pass(put);
    return {};
  });
}

Result<std::map<std::string, std::chrono::milliseconds>> ArtifactCache::durations() {
  std::map<std::string, std::chrono::milliseconds> out;
  auto read = m_impl->env->read([&](LmdbTxn& txn) {
    return txn.for_each(k_durations, [&](std::string_view name, std::string_view value) {
      std::int64_t ms = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
      if (ec == std::errc() && end == value.data() + value.size() && ms >= 0)
        out.emplace(std::string(name), std::chrono::milliseconds(ms));
      return true;  // a damaged row is only a lost estimate
    });
  });
  if (!read) return pass(read);
  return out;
}

Result<void> ArtifactCache::stage(const std::string& key, const std::string& dest, StageMode mode,
                                  Verify verify) {
  return stage_selected(key, nullptr, dest, mode, verify);
}

Result<void> ArtifactCache::stage_paths(const std::string& key,
                                        const std::unordered_set<std::string>& paths,
                                        const std::string& dest, StageMode mode, Verify verify,
                                        StagedCopies* copies) {
  return stage_selected(key, &paths, dest, mode, verify, copies);
}

Result<std::optional<std::string>> ArtifactCache::read_file(const std::string& key,
                                                            const std::string& path) {
  auto manifest = this->manifest(key);
  if (!manifest) return pass(manifest);
  std::string wanted = path;
  for (const auto& e : manifest->entries) {
    if (e.path != wanted) continue;
    if (e.type == ManifestEntry::Type::hardlink) {
      wanted = e.target;  // the first path of the inode comes earlier: search again
      for (const auto& f : manifest->entries)
        if (f.path == wanted && f.type == ManifestEntry::Type::file) return read_file(key, wanted);
      return std::nullopt;
    }
    if (e.type != ManifestEntry::Type::file) return std::nullopt;
    auto bytes = gang::read_file(m_impl->blobs.path(BlobId{e.digest, (e.mode & 0111) != 0}));
    if (!bytes) return pass(bytes);
    if (sha256_hex(*bytes) != e.digest)
      return make_error("blob for " + path + " in " + key + " is corrupt (hash mismatch)");
    return std::optional<std::string>(std::move(*bytes));
  }
  return std::nullopt;
}

Result<void> ArtifactCache::stage_selected(const std::string& key,
                                           const std::unordered_set<std::string>* paths,
                                           const std::string& dest, StageMode mode, Verify verify,
                                           StagedCopies* copies) {
  if (!valid_key(key)) return make_error("invalid cache key \"" + key + "\"");
  Impl& m = *m_impl;
  auto lock = FileLock::acquire(m.key_lock_path(key), FileLock::Kind::shared, FileLock::Wait::block);
  if (!lock) return pass(lock);
  lock->touch();  // last use, for gc's LRU order
  auto info = m.lookup(key);
  if (!info) return pass(info);
  if (!*info) return make_error("no artifact " + key + " in the cache");
  bool damaged = false;
  auto manifest = m.read_manifest((*info)->manifest_digest, &damaged);
  if (!manifest && !damaged) return pass(manifest);  // a read error: retry, keep the data
  if (!manifest) {
    m.warn("artifact " + key + " is damaged (" + manifest.error().to_string() +
           "); dropping it from the cache");
    (void)m.blobs.remove(BlobId{(*info)->manifest_digest, false});
    m.drop(key);
    return make_error("artifact " + key + " is damaged: " + manifest.error().to_string());
  }
  std::vector<BlobId> bad;
  auto staged = paths != nullptr
                    ? stage_tree(select_paths(*manifest, *paths), m.blobs, dest, mode, verify,
                                 &bad, copies)
                    : stage_tree(*manifest, m.blobs, dest, mode, verify, &bad, copies);
  if (!staged && !bad.empty()) {
    m.warn(staged.error().to_string() + "; dropping artifact " + key + " from the cache");
    for (const auto& id : bad) (void)m.blobs.remove(id);
    m.drop(key);
  }
  return staged;
}

Result<VerifyReport> ArtifactCache::verify() {
  Impl& m = *m_impl;
  VerifyReport report;
  std::set<BlobId> bad;
  std::set<std::string> suspects;  // keys whose artifact looked damaged
  std::set<std::string> seen;      // keys in the snapshot
  {
    // Hashing every blob takes long: hold the gc lock shared, like an
    // insert, so that gc cannot remove blobs under the walk while gangs
    // carry on publishing. The index is read from snapshots.
    auto gc_lock = FileLock::acquire(m.gc_lock_path(), FileLock::Kind::shared, FileLock::Wait::block);
    if (!gc_lock) return pass(gc_lock);
    std::optional<Error> read_error;
    auto walked = m.blobs.for_each([&](const BlobId& id, std::uint64_t) {
      ++report.blobs_checked;
      if (m.options.on_verify_blob) m.options.on_verify_blob(id);
      auto intact = m.blobs.check(id);
      if (!intact) {
        if (!read_error) read_error = intact.error();  // not damage: report, remove nothing
      } else if (!*intact) {
        bad.insert(id);
      }
    });
    if (!walked) return pass(walked);
    if (read_error) return std::unexpected(*read_error);
    auto all = list();
    if (!all) return pass(all);
    for (const auto& info : *all) {
      seen.insert(info.key);
      auto damaged = m.artifact_damaged(info, bad);
      if (!damaged) return pass(damaged);
      if (*damaged) suspects.insert(info.key);
    }
  }
  if (bad.empty() && suspects.empty()) return report;

  // Something is damaged: only now exclude inserts (which could deduplicate
  // onto a bad blob) and gc, re-check under the lock, and drop.
  auto gc_lock = FileLock::acquire(m.gc_lock_path(), FileLock::Kind::exclusive, FileLock::Wait::block);
  if (!gc_lock) return pass(gc_lock);
  for (const auto& id : bad) {
    auto intact = m.blobs.check(id);
    if (!intact) return pass(intact);
    if (*intact) continue;  // replaced by a good copy meanwhile
    report.bad_blobs.push_back(id.name());
    m.warn("blob " + id.name() + " is corrupt; removing it");
    auto removed = m.blobs.remove(id);
    if (!removed) return pass(removed);
  }
  auto all = list();
  if (!all) return pass(all);
  for (const auto& info : *all) {
    // Suspects, and artifacts published since the snapshot (they may use a
    // blob just removed); the rest were checked against the same blobs.
    if (suspects.count(info.key) == 0 && seen.count(info.key) != 0) continue;
    auto damaged = m.artifact_damaged(info, {});
    if (!damaged) return pass(damaged);
    if (!*damaged) continue;
    m.warn("artifact " + info.key + " is damaged; dropping it");
    report.dropped_artifacts.push_back(info.key);
    m.drop(info.key);
  }
  return report;
}

Result<GcReport> ArtifactCache::gc(std::optional<std::uint64_t> max_size) {
  Impl& m = *m_impl;
  auto gc_lock = FileLock::acquire(m.gc_lock_path(), FileLock::Kind::exclusive, FileLock::Wait::block);
  if (!gc_lock) return pass(gc_lock);
  GcReport report;
  auto orphans = m.blobs.remove_orphans(m.options.orphan_age_s);
  if (!orphans) return pass(orphans);
  report.temp_files_removed = *orphans;
  report.scratch_dirs_removed = m.build_dirs.remove_dead();

  std::map<BlobId, std::uint64_t> sizes;
  auto walked = m.blobs.for_each([&](const BlobId& id, std::uint64_t size) { sizes[id] = size; });
  if (!walked) return pass(walked);

  auto all = list();
  if (!all) return pass(all);
  std::map<BlobId, int> refs;
  std::map<std::string, std::vector<BlobId>> uses;  // key -> its distinct blobs
  for (const auto& info : *all) {
    std::set<BlobId> mine{BlobId{info.manifest_digest, false}};
    bool damaged = false;
    auto manifest = m.read_manifest(info.manifest_digest, &damaged);
    // Unread, its blobs would look unreferenced and be removed: stop instead.
    if (!manifest && !damaged) return pass(manifest);
    if (manifest) {
      for (const auto& e : manifest->entries)
        if (e.type == ManifestEntry::Type::file) mine.insert(BlobId{e.digest, (e.mode & 0111) != 0});
    }
    for (const auto& id : mine) ++refs[id];
    uses[info.key].assign(mine.begin(), mine.end());
  }
  std::uint64_t total = 0;
  for (const auto& [id, size] : sizes) total += size;
  auto remove_blob = [&](const BlobId& id) -> Result<void> {
    auto it = sizes.find(id);
    if (it == sizes.end()) return {};
    auto removed = m.blobs.remove(id);
    if (!removed) return removed;
    ++report.blobs_removed;
    report.bytes_freed += it->second;
    total -= it->second;
    sizes.erase(it);
    return {};
  };
  std::vector<BlobId> unreferenced;
  for (const auto& [id, size] : sizes)
    if (refs.find(id) == refs.end()) unreferenced.push_back(id);
  for (const auto& id : unreferenced) {
    auto removed = remove_blob(id);
    if (!removed) return pass(removed);
  }

  if (max_size && total > *max_size) {
    std::set<std::string> claimed;
    auto read = m.claim_table.for_each_key([&](std::string_view key) { claimed.emplace(key); });
    if (!read) return pass(read);
    std::vector<ArtifactInfo> by_age = *all;
    std::stable_sort(by_age.begin(), by_age.end(), [](const auto& a, const auto& b) {
      return a.last_used_ms < b.last_used_ms;
    });
    for (const auto& info : by_age) {
      if (total <= *max_size) break;
      if (claimed.count(info.key) != 0) continue;
      auto lock = FileLock::acquire(m.key_lock_path(info.key), FileLock::Kind::exclusive,
                                    FileLock::Wait::try_once);
      if (!lock) return pass(lock);
      if (!lock->locked()) continue;  // being staged right now
      auto deleted = m.env->write([&](LmdbTxn& txn) -> Result<void> {
        auto d = txn.del(k_artifacts, info.key);
        if (!d) return pass(d);
        return {};
      });
      if (!deleted) return pass(deleted);
      report.evicted.push_back(info.key);
      ::unlink((logs_dir() + "/" + info.key + ".log").c_str());  // its build log goes too
      for (const auto& id : uses[info.key]) {
        if (--refs[id] > 0) continue;
        auto removed = remove_blob(id);
        if (!removed) return pass(removed);
      }
    }
    if (!report.evicted.empty()) m.notifier.bump();
  }
  report.bytes_after = total;
  return report;
}

Result<bool> ArtifactCache::forget(const std::string& key) {
  Impl& m = *m_impl;
  // Wait for stages of this key to finish before removing its row.
  auto lock = FileLock::acquire(m.key_lock_path(key), FileLock::Kind::exclusive, FileLock::Wait::block);
  if (!lock) return pass(lock);
  bool any = false;
  auto done = m.env->write([&](LmdbTxn& txn) -> Result<void> {
    any = false;
    for (const char* db : {k_artifacts, k_claims, k_failures}) {  // (claims: of older gangs)
      auto d = txn.del(db, key);
      if (!d) return pass(d);
      any = any || *d;
    }
    return {};
  });
  if (!done) return pass(done);
  auto unclaimed = m.claim_table.drop(key);
  if (!unclaimed) return pass(unclaimed);
  any = any || *unclaimed;
  if (any) m.notifier.bump();
  return any;
}

Result<bool> ArtifactCache::wait_for_change(std::chrono::milliseconds timeout) {
  return m_impl->notifier.wait(timeout);
}

int ArtifactCache::change_fd() { return m_impl->notifier.fd(); }


}  // namespace gang
