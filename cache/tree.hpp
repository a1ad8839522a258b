// tree.hpp: moving directory trees into and out of the blob store. import
// walks a tree, stores every regular file as a blob (by copying, or by
// taking over the file's inode when the caller gives the tree up) and
// returns the manifest; stage materialises a manifest into a directory, by hard links to
// the read-only blobs or by copies.
//
// Why a build cannot change a blob in place: blobs are mode 0444/0555 and
// owned by the cache's user; a staged hard link shares that inode, so an
// unprivileged writer gets EACCES. Root ignores modes, so builds never see
// staged hard links writable: the sandbox mounts staged dependencies as
// read-only overlayfs lower layers (writes copy up into the upper layer and
// never reach the blob), and a caller that wants writable files stages with
// StageMode::copy. Hard-link staging gives every file its blob's mode (0444,
// or 0555 for executables); files with setuid/setgid/sticky bits are always
// copied so their exact mode survives. Copies get the recorded modes.
//
// Concurrency contract: import only reads its tree and writes blobs (see
// BlobStore); it stores files of 1 MiB or more on up to four threads of its
// own, joined before it returns. stage writes only under its destination; staging several
// manifests into one destination, one after the other, overlays them, later
// entries replacing earlier ones of the same path.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cache/blob_store.hpp"
#include "cache/manifest.hpp"
#include "util/error.hpp"

namespace gang {

enum class StageMode { hardlink, copy };
// copy: the tree is only read. take: the caller gives the tree up; its
// regular files may become blobs themselves (made read-only and hard-linked
// into the store, see BlobStore::take_file), so it must not be written to
// afterwards, only removed. Files linked from outside the tree, set-id
// files and files on another file system are copied.
enum class Ownership { copy, take };
enum class Verify { no, yes };

// The files a copying stage_tree wrote, by inode: each one's blob and its
// size and ctime once written. import_tree takes a file found here
// unchanged (same inode, size and ctime: any write or chmod since would have
// moved its ctime) for its blob without reading it again, if the blob is
// still in the store: a system assembled from copies is not hashed twice.
struct StagedCopies {
  struct Copy {
    std::string digest;
    std::uint64_t size = 0;
    std::int64_t ctime_sec = 0;
    std::int64_t ctime_nsec = 0;
  };
  std::map<std::pair<std::uint64_t, std::uint64_t>, Copy> by_inode;  // (dev, ino)
};

// Stores every file under dir in the blob store and describes the tree.
[[nodiscard]] Result<Manifest> import_tree(const std::string& dir, BlobStore& blobs,
                                           Ownership ownership = Ownership::copy,
                                           const StagedCopies* copies = nullptr);

// Materialises manifest under dest (created if needed). A missing or (with
// Verify::yes) corrupt blob is an error; its id is appended to bad_blobs.
// Hard-link staging falls back to copying when dest is on another file system.
// With `copies`, every file copied is recorded there.
[[nodiscard]] Result<void> stage_tree(const Manifest& manifest, const BlobStore& blobs,
                                      const std::string& dest, StageMode mode, Verify verify,
                                      std::vector<BlobId>* bad_blobs = nullptr,
                                      StagedCopies* copies = nullptr);

}  // namespace gang
