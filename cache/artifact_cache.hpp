// cache/: everything gang keeps between runs. The artifact cache (this
// header) stores built artifacts content-addressed and publishes them
// atomically in an LMDB index, and tells watchers of every change
// (change_notifier.hpp). Beside it, and reached through it: the claims and
// failure records that coordinate a gang of workers (claim_table.hpp,
// failure_records.hpp), the builds' scratch directories (build_dirs.hpp) and
// the unpacked trees builds stage (tree_cache.hpp). The git_* files keep the
// local mirrors of source repositories. cache/ depends only on util/.
//
// artifact_cache.hpp: the artifact cache. Layout under the root:
//   objects/xx/<sha256>[.x]  read-only blobs (files' contents, manifests)
//   incoming/                named temporary blobs (only without O_TMPFILE)
//   index/                   the LMDB environment: artifacts, failures, build times
//   claims/                  claims: an LMDB environment never flushed (MDB_NOSYNC),
//                            made anew by the first open of each boot (claims/boot)
//   locks/                   gc.lock and one lock file per key (last use = mtime)
//   generation               bumped after every committed change
//   logs/, tmp/              build logs; scratch on the same file system
//                            (build dirs "<name>.<pid>-<start>-<host tag>-<boot tag>.XXXXXX",
//                            host/boot tag: 8 hex digits of the SHA-256 of the
//                            host name / of its boot id)
//
// Publication: insert() stores every file as a blob (copying it, or with
// Ownership::take adopting a disposable tree's inodes), stores the manifest as
// a blob, syncs the file system once (syncfs), then commits the index row in
// one write transaction with MDB_NOOVERWRITE. A process killed part-way
// leaves at most unreferenced blobs or orphan temporaries, which gc()
// removes; never a visible partial artifact. gc() also removes the build
// directories in tmp/ of dead workers.
//
// Concurrency contract: many processes may use one cache at once; each opens
// it itself. Within a process, ArtifactCache objects for one root share one
// LMDB environment (opened once per process); an ArtifactCache may be used by
// several threads except for wait_for_change()/change_fd(), which belong to
// one thread. Never use an ArtifactCache in a child after fork(): its
// operations fail there; open the cache again in the child. insert() holds
// <root>/locks/gc.lock shared and gc() holds it exclusively, so gc never
// removes the blobs of an insert in flight; stage() holds the key's lock
// shared, and gc()/verify() skip keys whose lock they cannot take.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/blob_store.hpp"
#include "cache/build_dirs.hpp"
#include "cache/claim_table.hpp"
#include "cache/failure_records.hpp"
#include "cache/manifest.hpp"
#include "cache/records.hpp"
#include "cache/system.hpp"
#include "cache/tree.hpp"
#include "util/error.hpp"

namespace gang {

enum class PublishOutcome { inserted, already_present };

struct VerifyReport {
  std::uint64_t blobs_checked = 0;
  std::vector<std::string> bad_blobs;          // blob names found missing or corrupt
  std::vector<std::string> dropped_artifacts;  // keys removed because they were damaged
  [[nodiscard]] bool ok() const { return bad_blobs.empty() && dropped_artifacts.empty(); }
};

struct RepairReport {
  std::uint64_t manifests_found = 0;      // version 2 manifests among the blobs
  std::uint64_t restored = 0;             // artifacts in the new index
  std::uint64_t kept_from_old_index = 0;  // of which from rows of the old index
  std::uint64_t old_manifests = 0;        // version 1 manifests (no key): not restorable
  std::uint64_t incomplete = 0;           // manifests with a missing blob: skipped
  bool old_index_readable = false;
  std::string old_index;                  // where the old index was moved ("" if none)
};

class LmdbEnv;

struct CacheCopyReport {
  std::uint64_t artifacts = 0;     // in the copy's index
  std::uint64_t files_linked = 0;  // blobs and git objects shared with the original
  std::uint64_t files_copied = 0;  // the rest (or all, across file systems)
  std::uint64_t bytes_copied = 0;
  std::uint64_t claims_dropped = 0;
};

struct GcReport {
  std::vector<std::string> evicted;  // artifact keys removed, least recently used first
  std::uint64_t blobs_removed = 0;
  std::uint64_t bytes_freed = 0;
  std::uint64_t temp_files_removed = 0;
  std::uint64_t scratch_dirs_removed = 0;  // build directories of dead workers in tmp/
  std::uint64_t bytes_after = 0;  // blob bytes on disk afterwards
};

class ArtifactCache {
 public:
  struct Options {
    std::shared_ptr<System> system;                         // null: real_system()
    std::chrono::milliseconds lease{std::chrono::minutes(10)};  // claims of other hosts
    std::size_t initial_map_size = std::size_t{64} << 20;   // LMDB map; grows on demand
    TempFiles temp_files = TempFiles::anonymous;
    // gc removes temporaries this old even if alive, and build directories
    // this old whose creator's liveness cannot be known (another host's).
    std::int64_t orphan_age_s = 24 * 3600;
    // Where warnings go (e.g. a corrupt blob); null: stderr "gang: warning: ...".
    std::function<void(const std::string&)> warn;
    // The seam the write path goes through (null: the real file system);
    // tests inject faults with it.
    std::shared_ptr<FileSystem> file_system;
    // Tests: called by verify() before it hashes each blob.
    std::function<void(const BlobId&)> on_verify_blob;
  };

  // Opens (creating if needed) the cache at root.
  [[nodiscard]] static Result<ArtifactCache> open(const std::string& root);
  [[nodiscard]] static Result<ArtifactCache> open(const std::string& root, Options options);
  ArtifactCache(ArtifactCache&&) noexcept;
  ArtifactCache& operator=(ArtifactCache&&) noexcept;
  ~ArtifactCache();

  [[nodiscard]] const std::string& root() const;
  [[nodiscard]] std::string logs_dir() const;  // <root>/logs: build logs
  [[nodiscard]] std::string tmp_dir() const;   // <root>/tmp: build scratch, same file system
  // The build directories in tmp/ (build_dirs.hpp): make(), and
  // remove_dead(), which gc() runs too, and workers when they start, so that
  // killed workers' sandboxes do not pile up.
  [[nodiscard]] const BuildDirs& build_dirs() const;

  // This process as a claim holder / builder.
  [[nodiscard]] Holder holder(int instance = 0, std::string gang_id = {}) const;

  // True if key has a published artifact (false also on errors).
  [[nodiscard]] bool contains(const std::string& key);
  // The artifact's index row, or nullopt.
  [[nodiscard]] Result<std::optional<ArtifactInfo>> lookup(const std::string& key);
  // For each key, in one read transaction: whether its artifact exists, and
  // its failure record if it has one (the worker's scan of a whole graph).
  struct KeyState {
    bool cached = false;
    std::optional<FailureRecord> failure;
  };
  [[nodiscard]] Result<std::vector<KeyState>> states(const std::vector<std::string>& keys);
  // The manifest digest of each key's artifact ("" where there is none),
  // read in one transaction: what a tree of many artifacts is checked by.
  [[nodiscard]] Result<std::vector<std::string>> manifest_digests(const std::vector<std::string>& keys);
  // Every artifact, in key order.
  [[nodiscard]] Result<std::vector<ArtifactInfo>> list();
  // The artifact's manifest, read from its blob and checked against its hash.
  [[nodiscard]] Result<Manifest> manifest(const std::string& key);

  // Stores the tree at dir as key's artifact. already_present means somebody
  // else published key first (the caller logs "Bah!"); nothing is changed
  // then. A claim on key held by meta.built_by's process is released in the
  // same commit. On error (e.g. a full disk) the index is untouched. A successful
  // publication clears key's failure record. With Ownership::take the caller
  // gives dir up: its files may become the blobs (read-only from then on),
  // whatever the outcome, so the caller may only remove dir afterwards.
  // With `copies` (from stage_paths into dir), files staged as copies and
  // unchanged since are taken for their blobs without being read again.
  [[nodiscard]] Result<PublishOutcome> insert(const std::string& key, const std::string& dir,
                                              const ArtifactMeta& meta,
                                              Ownership ownership = Ownership::copy,
                                              const StagedCopies* copies = nullptr);
  // Publishes key's artifact as described by `manifest` (another cache's:
  // a remote tier's), fetching the file blobs this store lacks: fetch(id,
  // size, fd) writes the blob's bytes into fd, an empty file in this
  // cache's tmp/. Every fetched blob is hashed again here and refused
  // unless its digest and size are the manifest's; nothing is published
  // unless every blob is intact. The index row and the new manifest (this
  // cache's own, recording key) are committed as by insert(), with meta.
  using BlobFetcher =
      std::function<Result<void>(const BlobId& id, std::uint64_t size, int fd)>;
  [[nodiscard]] Result<PublishOutcome> insert_fetched(const std::string& key,
                                                      const Manifest& manifest,
                                                      const ArtifactMeta& meta,
                                                      const BlobFetcher& fetch);
  // The path of a file blob in the store (it may not exist); for pushing.
  [[nodiscard]] std::string blob_path(const BlobId& id) const;
  // Build-time history, by component id, kept apart from the artifacts
  // (forget, gc and eviction leave it): the last successful build's
  // duration. Workers use it to schedule the longest remaining chain first.
  [[nodiscard]] Result<void> record_duration(const std::string& component,
                                             std::chrono::milliseconds duration);
  [[nodiscard]] Result<std::map<std::string, std::chrono::milliseconds>> durations();

  // Materialises key's artifact into dest (created if needed; existing
  // entries are replaced, so dependencies can be staged one after another).
  // Records the last use. A missing or corrupt blob is a cache miss: a
  // warning, the artifact is dropped from the index, and an error returned.
  [[nodiscard]] Result<void> stage(const std::string& key, const std::string& dest,
                                   StageMode mode = StageMode::hardlink, Verify verify = Verify::no);
  // Like stage(), but materialises only the entries at `paths` and the
  // directories above them (select_paths in manifest.hpp).
  // With `copies`, every file copied is recorded there (see insert()).
  [[nodiscard]] Result<void> stage_paths(const std::string& key,
                                         const std::unordered_set<std::string>& paths,
                                         const std::string& dest, StageMode mode, Verify verify,
                                         StagedCopies* copies = nullptr);
  // The contents of the file at `path` (relative to the artifact's root) in
  // key's artifact, checked against its hash; nullopt if the artifact has no
  // such file. An error if key is not cached or the file's blob is damaged.
  [[nodiscard]] Result<std::optional<std::string>> read_file(const std::string& key,
                                                             const std::string& path);

  // Re-hashes every blob; drops damaged blobs and the artifacts that need
  // them. It hashes while holding the gc lock shared and reads the index
  // from snapshots, so gangs keep publishing meanwhile; only when it found
  // damage does it take the lock exclusively, re-check and drop.
  [[nodiscard]] Result<VerifyReport> verify();
  // Makes dest (absent or empty) a copy of this cache to start other runs
  // from (`gang build --cache-from`): the index as a consistent snapshot,
  // without claims; blobs and git objects hard-linked (copied across file
  // systems), the mirrors' refs and config copied. Logs, scratch and kept
  // sandboxes are left out. This cache is not changed, and runs on the copy
  // never change it.
  [[nodiscard]] Result<CacheCopyReport> copy_to(const std::string& dest);

  // Rebuilds the index of the cache at root from its blob store: every
  // complete artifact whose manifest records its key (version 2) is indexed
  // again, with the newest manifest winning for a key; rows of the old
  // index whose artifacts are complete are kept where it can still be read.
  // The old index directory is kept beside the new one (index.before-repair-<ms>).
  // Claims and failure records are dropped. Run it while no gang uses the
  // cache (it takes the gc lock exclusively, but open environments of other
  // processes would keep using the old index).
  [[nodiscard]] static Result<RepairReport> repair(const std::string& root);
  // Removes orphan temporaries, build directories in tmp/ whose creator is
  // dead (see BuildDirs::remove_dead), and unreferenced
  // blobs and, with max_size, evicts least-recently-used artifacts (and
  // their build logs) until the blobs fit; never an artifact that is
  // claimed or being staged.
  [[nodiscard]] Result<GcReport> gc(std::optional<std::uint64_t> max_size = std::nullopt);

  // Who builds what (claim_table.hpp), and what failed (failure_records.hpp).
  [[nodiscard]] ClaimTable& claims();
  [[nodiscard]] FailureRecords& failures();
  // Removes key's artifact row, claim and failure record; true if any existed.
  // Blobs are left for gc().
  [[nodiscard]] Result<bool> forget(const std::string& key);

  // Sleeps until the index changes or timeout passes; true on a change.
  // Changes are seen from the first call of change_fd() or wait_for_change()
  // on: a worker calls change_fd() once before its first look at the index.
  [[nodiscard]] Result<bool> wait_for_change(std::chrono::milliseconds timeout);
  // A pollable fd for the same events (readable on change; wait_for_change(0)
  // consumes them); -1 if inotify is unavailable.
  [[nodiscard]] int change_fd();

  // True if key is acceptable: non-empty, no '/', no NUL or newline.
  [[nodiscard]] static bool valid_key(const std::string& key);

 private:
  struct Impl;
  explicit ArtifactCache(std::unique_ptr<Impl> impl);
  [[nodiscard]] LmdbEnv& index_env();
  [[nodiscard]] Result<void> stage_selected(const std::string& key,
                                            const std::unordered_set<std::string>* paths,
                                            const std::string& dest, StageMode mode, Verify verify,
                                            StagedCopies* copies = nullptr);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace gang
