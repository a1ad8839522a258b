// tree_cache.hpp: artifacts unpacked once, as read-only trees, so that a
// build's dependencies are handed to its sandbox as overlayfs lower layers
// instead of being hard-linked file by file into every sandbox.
//
// A tree is <root>/trees/<id>: one artifact, or several merged in order
// (later artifacts replace earlier entries, exactly as staging them one
// after the other into one directory does), its files hard links to the
// read-only blobs (copies for set-id files), made once under a temporary
// name and renamed into place; <root>/trees/<id>.keys lists its artifacts
// with their manifest digests: an artifact dropped and published again (a
// new manifest) makes its old trees stale, and they are made again.
// The id is the first 20 hex digits of the SHA-256 of the key list, short
// so that many layers fit one overlay's mount options.
//
// Damage: every directory and regular file of a tree carries the blob
// stamp as its mtime (files hard-linked to blobs share their inode, and
// stamp; copies of set-id files are stamped when the tree is made); adding,
// removing or renaming an entry sets its directory's mtime to the present,
// and any write to a file sets the file's. A tree is checked (one stat per
// entry) the first time this TreeCache hands it out, and with Verify::yes
// made again from re-hashed blobs; a damaged tree is moved aside and made
// again from the blob store. It is never handed out wrong.
//
// In use: whoever holds a Use keeps a shared lock on the tree
// (<root>/locks/tree-<id>), for as long as a sandbox has it mounted. prune()
// (gang cache gc, forget) removes only trees it can lock exclusively, and
// none that a kept failed sandbox (<root>/failed/*/sandbox.spec) names.
//
// Concurrency: any number of processes; the first to rename a tree into
// place wins and the others use it. A TreeCache is used by one thread.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cache/artifact_cache.hpp"
#include "cache/file_lock.hpp"

namespace gang {

class TreeCache {
 public:
  explicit TreeCache(ArtifactCache& cache);

  struct Use {
    std::string path;  // the tree's root directory
    FileLock lock;     // shared: keeps prune() away
  };
  // The tree of `keys` merged in order (one key: that artifact's tree),
  // made if needed. An error if an artifact is missing or damaged (the cache
  // then drops it, as stage() does).
  [[nodiscard]] Result<Use> tree(const std::vector<std::string>& keys, Verify verify = Verify::no);

  // The id of a key list's tree, and its path (which may not exist).
  [[nodiscard]] static std::string tree_id(const std::vector<std::string>& keys);
  [[nodiscard]] std::string path(const std::vector<std::string>& keys) const;

  struct PruneReport {
    std::uint64_t removed = 0;        // trees removed
    std::uint64_t kept_in_use = 0;    // trees whose artifacts are gone but still in use
    std::uint64_t temporaries = 0;    // unfinished trees of dead processes removed
  };
  // Removes the trees that name an artifact no longer in the index, or
  // (unused_for_s > 0) that no build used for that many seconds (a tree's
  // last use is its lock file's mtime), or all of them (everything), except
  // those in use.
  [[nodiscard]] Result<PruneReport> prune(bool everything = false, std::int64_t unused_for_s = 0);

  struct CheckReport {
    std::uint64_t trees = 0;
    std::vector<std::string> damaged;  // ids removed because they were damaged
  };
  // Checks every tree (directories, and each file against its manifest
  // entry and blob); removes the damaged ones (gang cache verify).
  [[nodiscard]] Result<CheckReport> check_all();

 private:
  [[nodiscard]] Result<void> make(const std::vector<std::string>& keys, const std::string& id,
                                  const std::string& listed, Verify verify);
  // "key manifest-digest" lines for keys as the index has them now.
  [[nodiscard]] Result<std::string> listing(const std::vector<std::string>& keys);
  [[nodiscard]] Result<bool> intact(const std::string& id, Verify verify);
  void discard(const std::string& id);

  ArtifactCache& m_cache;
  std::string m_trees;                // <root>/trees
  std::set<std::string> m_checked;    // ids checked by this object
  std::set<std::string> m_touched;    // ids whose lock file this object touched (last use)
  std::map<std::string, std::string> m_listings;  // id -> its <id>.keys, as read or written
  std::uint64_t m_counter = 0;        // temporary names
};

}  // namespace gang
